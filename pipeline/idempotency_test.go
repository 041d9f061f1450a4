package pipeline

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

func testService(t *testing.T) (*Service, *store.Key) {
	t.Helper()
	rdb := testkit.StartRedis(t).Client(t)
	svc := New(rdb, []byte("secret"), Options{Hostname: "gw.test", PublicURL: "https://t.test",
		RateLimit: RateLimit{PerSecond: 1000, Burst: 1000}})
	k, err := svc.EnsureKey(context.Background(), "acme", "sp_test_pipelineunittestkey0000001")
	if err != nil {
		t.Fatal(err)
	}
	return svc, k
}

func TestSendIdempotency(t *testing.T) {
	svc, k := testService(t)
	ctx := context.Background()
	req := SendRequest{From: "hello@acme.test", To: []string{"a@x.test"}, Subject: "s", Text: "t"}

	first, err := svc.Send(ctx, k, req, "key-1")
	if err != nil || first.Replayed {
		t.Fatalf("%+v %v", first, err)
	}
	again, err := svc.Send(ctx, k, req, "key-1")
	if err != nil || !again.Replayed || again.IDs[0] != first.IDs[0] {
		t.Fatalf("repeat: %+v %v", again, err)
	}
	other := req
	other.Subject = "different"
	if _, err := svc.Send(ctx, k, other, "key-1"); AsError(err).HTTPStatus != 422 {
		t.Fatalf("different body: %v", err)
	}
	// Another account with the same key is independent.
	k2, err := svc.EnsureKey(ctx, "other", "sp_test_pipelineunittestkey0000002")
	if err != nil {
		t.Fatal(err)
	}
	r2, err := svc.Send(ctx, k2, req, "key-1")
	if err != nil || r2.Replayed || r2.IDs[0] == first.IDs[0] {
		t.Fatalf("other account: %+v %v", r2, err)
	}
	// A failed request releases its key: the corrected retry goes through.
	bad := req
	bad.To = []string{"not an address"}
	if _, err := svc.Send(ctx, k, bad, "key-2"); AsError(err).HTTPStatus != 400 {
		t.Fatalf("bad request: %v", err)
	}
	bad.To = req.To
	if r, err := svc.Send(ctx, k, bad, "key-2"); err != nil || r.Replayed {
		t.Fatalf("retry after a failure: %+v %v", r, err)
	}
	page, err := svc.ListEmails(ctx, k, EmailFilter{})
	if err != nil || len(page.Emails) != 2 {
		t.Fatalf("account holds %d emails, want 2: %v", len(page.Emails), err)
	}
}

func TestSendIdempotencyConcurrent(t *testing.T) {
	svc, k := testService(t)
	req := SendRequest{From: "hello@acme.test", To: []string{"a@x.test"}, Subject: "s", Text: "t"}
	var wg sync.WaitGroup
	ids := make([]string, 20)
	errs := make([]error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := svc.Send(context.Background(), k, req, "same")
			errs[i] = err
			if err == nil {
				ids[i] = r.IDs[0]
			}
		}()
	}
	wg.Wait()
	for i := range 20 {
		if errs[i] != nil || ids[i] != ids[0] {
			t.Fatalf("request %d: %s %v (first %s)", i, ids[i], errs[i], ids[0])
		}
	}
	page, _ := svc.ListEmails(context.Background(), k, EmailFilter{})
	if len(page.Emails) != 1 {
		t.Fatalf("%d emails stored, want 1", len(page.Emails))
	}
}

// A claim whose pending marker expired and was taken by another request
// stores nothing: one key never yields two sends.
func TestPersistWithLostClaim(t *testing.T) {
	svc, k := testService(t)
	ctx := context.Background()
	c, cached, err := svc.claimIdempotency(ctx, k.AccountID, scopeSend, "k", "fp")
	if err != nil || cached != nil {
		t.Fatal(err)
	}
	// Simulate expiry and a new owner.
	if err := svc.store.Redis().Del(ctx, c.key).Err(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.claimIdempotency(ctx, k.AccountID, scopeSend, "k", "fp"); err != nil {
		t.Fatal(err)
	}
	e := &store.Email{ID: store.NewID("em"), AccountID: k.AccountID, Status: store.StatusPending, CreatedAt: time.Now()}
	err = svc.persist(ctx, k, []store.NewEmail{{Email: e, Body: []byte("x")}}, &Receipt{IDs: []string{e.ID}}, time.Time{}, c)
	if !errors.Is(err, ErrIdempotencyInProgress) {
		t.Fatalf("got %v", err)
	}
	if _, err := svc.store.Email(ctx, e.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("email stored despite the lost claim: %v", err)
	}
}

// Cancel and release race on the same schedule entry: whichever runs first
// wins, and an email is never both released and cancelled.
func TestCancelAgainstRelease(t *testing.T) {
	svc, k := testService(t)
	ctx := context.Background()
	now := time.Now()
	for round := range 50 {
		req := SendRequest{From: "hello@acme.test", To: []string{"a@x.test", "b@x.test"}, Subject: "s", Text: "t",
			ScheduledAt: now.Add(time.Hour).Format(time.RFC3339)}
		r, err := svc.Send(ctx, k, req, "")
		if err != nil || r.Status != store.StatusScheduled || len(r.IDs) != 2 {
			t.Fatalf("%+v %v", r, err)
		}
		var cancelErr error
		var released int
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, cancelErr = svc.CancelSchedule(ctx, k, r.IDs[round%2])
		}()
		go func() {
			defer wg.Done()
			released, _ = svc.store.ReleaseDue(ctx, now.Add(2*time.Hour), 1000)
		}()
		wg.Wait()
		for _, id := range r.IDs {
			e, _ := svc.store.Email(ctx, id)
			switch {
			case cancelErr == nil && (e.Status != store.StatusCancelled || released != 0):
				t.Fatalf("round %d: cancelled, yet %s is %s and %d released", round, id, e.Status, released)
			case cancelErr != nil && (AsError(cancelErr).HTTPStatus != 409 || released != 2 || e.Status != store.StatusScheduled):
				t.Fatalf("round %d: %v, %s is %s, %d released", round, cancelErr, id, e.Status, released)
			}
		}
		// Drain the stream so that the next round's release counts only its own.
		_ = svc.store.Redis().Del(ctx, store.StreamKey()).Err()
	}
}

func TestScheduleLimits(t *testing.T) {
	now := testNow
	for value, ok := range map[string]bool{
		"":                          true,
		"2026-11-29T11:00:00Z":      true,
		"2026-11-29T12:00:00+02:00": true, // 10:00Z, exactly now: not in the past
		"2026-11-29T09:59:59Z":      false,
		"2026-12-29T10:00:01Z":      false,
		"2026-12-29T10:00:00Z":      true,
		"tomorrow":                  false,
		"2026-11-30T10:00:00":       false, // no zone
	} {
		_, err := ParseSchedule("scheduled_at", value, now)
		if (err == nil) != ok {
			t.Errorf("%q: %v", value, err)
		}
	}
}
