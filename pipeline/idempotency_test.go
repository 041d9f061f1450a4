package pipeline

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

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
