package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
	"github.com/pigeonpost/pigeonpost/tracking"
)

func sendSubmission(k *store.Key, to string, batchID ...string) Submission {
	return Submission{Key: k, Source: "api", EnvelopeFrom: "hello@acme.test", Recipients: []string{to},
		Message: []byte("From: hello@acme.test\r\nTo: " + to + "\r\nSubject: s\r\n\r\nbody\r\n"),
		Send:    &store.SendRef{TemplateID: "tpl_x", ContactID: "ct_" + to, BatchID: strings.Join(batchID, "")}}
}

// SubmitAll: a refused submission does not sink the others; suppressed
// and withheld sends are recorded, not queued; the rate limit refuses the
// whole, storing nothing.
func TestSubmitAll(t *testing.T) {
	ctx := context.Background()
	rdb := testkit.StartRedis(t).Client(t)
	st := store.New(rdb, time.Now)
	svc := New(st, tracking.NewSigner([]byte("secret")), Options{Hostname: "gw.test", PublicURL: "https://t.test",
		RateLimit: RateLimit{PerSecond: 0.001, Burst: 3}})
	k := testKey(t, st, "acme", "sp_test_pipelineunittestkey0000001")
	if err := st.Suppress(ctx, k.AccountID, "listed@example.test", "bounce"); err != nil {
		t.Fatal(err)
	}
	batch := &store.Batch{ID: store.NewID("bat"), AccountID: k.AccountID, Total: 5, CreatedAt: time.Now()}
	withheld := sendSubmission(k, "left@example.test", batch.ID)
	withheld.Withhold = "the contact is unsubscribed"
	subs := []Submission{
		sendSubmission(k, "a@example.test", batch.ID),
		sendSubmission(k, "not an address", batch.ID),
		sendSubmission(k, "listed@example.test", batch.ID),
		withheld,
		sendSubmission(k, "b@example.test", batch.ID),
	}
	results, err := svc.SubmitAll(ctx, k, subs, AllOptions{Batch: batch})
	if err != nil {
		t.Fatal(err)
	}
	want := []store.Status{store.StatusSent, "", store.StatusSuppressed, store.StatusSuppressed, store.StatusSent}
	for i, r := range results {
		if (want[i] == "") != (r.Err != nil) || r.Err == nil && r.Receipt.Status != want[i] {
			t.Errorf("submission %d: %+v %v, want %s", i, r.Receipt, r.Err, want[i])
		}
	}
	if !errors.Is(results[1].Err, ErrBadAddress) {
		t.Errorf("bad address: %v", results[1].Err)
	}
	counts, err := st.BatchStatusCounts(ctx, batch.ID)
	if err != nil || counts[store.StatusSent] != 2 || counts[store.StatusSuppressed] != 2 {
		t.Errorf("batch counts %v %v", counts, err)
	}
	e, err := st.Email(ctx, results[3].Receipt.IDs[0])
	if err != nil || e.LastError != "the contact is unsubscribed" || e.Send == nil || e.Send.ContactID != "ct_left@example.test" {
		t.Errorf("withheld send %+v %v", e, err)
	}

	// Two sends were charged of the burst of 3: two more are over it, and
	// refused as a whole.
	before := rdb.ZCard(ctx, store.AccountSendsKey(0, k.AccountID)).Val()
	_, err = svc.SubmitAll(ctx, k, []Submission{sendSubmission(k, "c@example.test"), sendSubmission(k, "d@example.test")}, AllOptions{})
	if !errors.Is(err, ErrRateLimited) {
		t.Fatalf("over the rate: %v", err)
	}
	if after := rdb.ZCard(ctx, store.AccountSendsKey(0, k.AccountID)).Val(); after != before {
		t.Errorf("%d sends stored by a refused submission", after-before)
	}
	if _, err := svc.SubmitAll(ctx, k, []Submission{sendSubmission(k, "c@example.test")}, AllOptions{}); err != nil {
		t.Errorf("the last send of the burst: %v", err)
	}
}

// Two processes sending at once stop at the monthly limit exactly: the
// count and the limit are one script's.
func TestMonthlyLimitAcrossProcesses(t *testing.T) {
	ctx := context.Background()
	rdb := testkit.StartRedis(t).Client(t)
	st := store.New(rdb, time.Now)
	limits := RateLimit{PerSecond: 1_000_000, Burst: 1_000_000, Monthly: 50}
	var procs [2]*Service
	for i := range procs {
		procs[i] = New(store.New(rdb, time.Now), tracking.NewSigner([]byte("secret")), Options{Hostname: "gw.test",
			PublicURL: "https://t.test", RateLimit: limits})
	}
	k := testKey(t, st, "acme", "sp_test_pipelineunittestkey0000001")
	var wg sync.WaitGroup
	var accepted, refused atomic.Int64
	for i := range 80 {
		wg.Go(func() {
			sub := sendSubmission(k, fmt.Sprintf("u%d@example.test", i))
			sub.Send = nil
			_, err := procs[i%2].Submit(ctx, sub)
			switch {
			case err == nil:
				accepted.Add(1)
			case errors.Is(err, ErrMonthlyLimit):
				refused.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if accepted.Load() != 50 || refused.Load() != 30 {
		t.Errorf("%d accepted, %d refused; want 50 and 30", accepted.Load(), refused.Load())
	}
	if used, _, err := st.Usage(ctx, k.AccountID, Month(time.Now())); err != nil || used != 50 {
		t.Errorf("used %d, %v", used, err)
	}
	// A submission to several recipients is refused whole if it would pass
	// the limit: nothing is charged.
	if err := st.SetMonthlyLimit(ctx, k.AccountID, 52); err != nil {
		t.Fatal(err)
	}
	three := sendSubmission(k, "a@example.test")
	three.Send, three.Recipients = nil, []string{"a@example.test", "b@example.test", "c@example.test"}
	if _, err := procs[0].Submit(ctx, three); !errors.Is(err, ErrMonthlyLimit) {
		t.Errorf("three over a limit two away: %v", err)
	}
	if used, own, _ := st.Usage(ctx, k.AccountID, Month(time.Now())); used != 50 || own != 52 {
		t.Errorf("after the refusal: used %d, own limit %d", used, own)
	}
}
