package pipeline

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/failpoint"
	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
	"github.com/pigeonpost/pigeonpost/tracking"
)

// testKey makes secret a full-permission key of the named account in st.
func testKey(t testing.TB, st *store.Store, account, secret string) *store.Key {
	t.Helper()
	ctx := context.Background()
	id, err := st.EnsureAccount(ctx, account)
	if err != nil {
		t.Fatal(err)
	}
	mode := store.ModeLive
	if strings.HasPrefix(secret, "sp_test_") {
		mode = store.ModeTest
	}
	k, err := st.CreateKey(ctx, id, "test", mode, store.PermissionFull, secret, "")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// testService returns a Service on a fresh Redis and a test-mode key.
func testService(t *testing.T) (*Service, *store.Key) {
	t.Helper()
	rdb := testkit.StartRedis(t).Client(t)
	st := store.New(rdb, time.Now)
	svc := New(st, tracking.NewSigner([]byte("secret")), Options{Hostname: "gw.test", PublicURL: "https://t.test",
		RateLimit: RateLimit{PerSecond: 1000, Burst: 1000}})
	return svc, testKey(t, st, "acme", "sp_test_pipelineunittestkey0000001")
}

// A claim whose pending marker expired and was taken by another request
// stores nothing: one key never yields two sends.
func TestPersistWithLostClaim(t *testing.T) {
	svc, k := testService(t)
	ctx := context.Background()
	c, cached, err := svc.claimIdempotency(ctx, k, ScopeSend, "k", "fp")
	if err != nil || cached != nil {
		t.Fatal(err)
	}
	// Simulate expiry and a new owner.
	if err := svc.store.Redis().Del(ctx, c.key).Err(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.claimIdempotency(ctx, k, ScopeSend, "k", "fp"); err != nil {
		t.Fatal(err)
	}
	e := &store.Email{ID: store.NewID("em"), AccountID: k.AccountID, Status: store.StatusPending, CreatedAt: time.Now()}
	err = svc.persist(ctx, []store.NewEmail{{Email: e, Body: []byte("x")}}, store.PersistOptions{Idempotency: c.done([]byte(`{"ids":["x"]}`))})
	if !errors.Is(err, ErrIdempotencyInProgress) {
		t.Fatalf("got %v", err)
	}
	if _, err := svc.store.Email(ctx, e.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("email stored despite the lost claim: %v", err)
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

// An SMTP message with a Message-ID claims its derived key without
// writing it: a message refused after the look (all its recipients
// suppressed) leaves no key behind. Of two copies stored at the same
// time, the one whose MULTI comes second (here: the second copy is
// submitted whole while the first is about to commit) stores nothing and
// answers with the first's receipt, replayed.
func TestSMTPIdempotencyUnwrittenClaim(t *testing.T) {
	svc, k := testService(t)
	ctx := context.Background()
	msg := []byte("From: hello@acme.test\r\nTo: a@example.test\r\nMessage-ID: <m1@acme.test>\r\nSubject: s\r\n\r\nbody\r\n")
	submit := func(rcpt string) (*Receipt, error) {
		return svc.Submit(ctx, Submission{Key: k, Source: "smtp", EnvelopeFrom: "hello@acme.test",
			Recipients: []string{rcpt}, Message: msg})
	}
	if err := svc.store.Suppress(ctx, k.AccountID, "gone@example.test", "manual"); err != nil {
		t.Fatal(err)
	}
	if _, err := submit("gone@example.test"); !errors.Is(err, ErrAllSuppressed) {
		t.Fatalf("to a suppressed address: %v, want ErrAllSuppressed", err)
	}
	if keys := svc.rdb.Keys(ctx, "*idem*").Val(); len(keys) != 0 {
		t.Errorf("a refused message left idempotency keys %v", keys)
	}

	var second *Receipt
	var secondErr error
	once := true
	disarm := failpoint.Arm(failpoint.BeforeCommit, func(string) {
		if once {
			once = false
			second, secondErr = submit("a@example.test")
		}
	})
	first, err := submit("a@example.test")
	disarm()
	if err != nil || secondErr != nil {
		t.Fatalf("two copies at once: %v, %v", err, secondErr)
	}
	if second.Replayed || !first.Replayed || first.IDs[0] != second.IDs[0] {
		t.Errorf("two copies at once: first %+v, second %+v; want the first to answer with the second's receipt", first, second)
	}
	if n := svc.rdb.Keys(ctx, "*:email:*").Val(); len(n) != 1 {
		t.Errorf("two copies at once stored emails %v, want one", n)
	}
	again, err := submit("a@example.test")
	if err != nil || !again.Replayed || again.IDs[0] != second.IDs[0] {
		t.Errorf("a third copy: %+v, %v", again, err)
	}
	// A copy that would now be refused (its recipient suppressed since,
	// say by the first copy's bounce) still gets the first receipt.
	if err := svc.store.Suppress(ctx, k.AccountID, "a@example.test", "manual"); err != nil {
		t.Fatal(err)
	}
	again, err = submit("a@example.test")
	if err != nil || !again.Replayed || again.IDs[0] != second.IDs[0] {
		t.Errorf("a copy refused now: %+v, %v; want the first receipt", again, err)
	}
}
