package store

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
)

// TestDestinationAdmission: the shaping script on a fake clock. Leases are
// bounded and a lapsed one (its process killed) frees its slot; the rate
// lets a burst through, then one message per interval; a suspension
// refuses everything until it ends, doubles when it comes back in a row,
// stops at the maximum and starts over after a quiet spell. Every call
// stays in one cluster slot.
func TestDestinationAdmission(t *testing.T) {
	rdb := testkit.StartRedis(t).Client(t)
	rdb.AddHook(testkit.NewSlotChecker(t.Errorf))
	s := New(rdb, time.Now)
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	admit := func(dest, id string, ttl time.Duration, conns, rate, burst int) (Admission, time.Time) {
		t.Helper()
		a, at, err := s.AdmitDestination(ctx, dest, id, now, now.Add(ttl), conns, rate, burst)
		if err != nil {
			t.Fatal(err)
		}
		return a, at
	}

	// Connections: two slots; the third waits; a released slot is free at
	// once, a lapsed one when its expiry passes.
	if a, _ := admit("mx.a.test", "l1", time.Minute, 2, 0, 0); a != Admitted {
		t.Fatalf("first lease: %v", a)
	}
	if a, _ := admit("mx.a.test", "l2", 10*time.Second, 2, 0, 0); a != Admitted {
		t.Fatalf("second lease: %v", a)
	}
	if a, _ := admit("mx.a.test", "l3", time.Minute, 2, 0, 0); a != ConnectionsFull {
		t.Fatalf("third lease: %v, want ConnectionsFull", a)
	}
	if a, _ := admit("mx.b.test", "l4", time.Minute, 2, 0, 0); a != Admitted {
		t.Fatalf("another destination: %v", a)
	}
	if err := s.ReleaseDestinationLease(ctx, "mx.a.test", "l1"); err != nil {
		t.Fatal(err)
	}
	if a, _ := admit("mx.a.test", "l5", time.Minute, 2, 0, 0); a != Admitted {
		t.Fatalf("after a release: %v", a)
	}
	if a, _ := admit("mx.a.test", "l6", time.Minute, 2, 0, 0); a != ConnectionsFull {
		t.Fatalf("full again: %v", a)
	}
	now = now.Add(11 * time.Second) // l2 was never renewed: its process died
	if a, _ := admit("mx.a.test", "l7", time.Minute, 2, 0, 0); a != Admitted {
		t.Fatalf("after a lease lapsed: %v", a)
	}
	if err := s.RenewDestinationLease(ctx, "mx.a.test", "l2", now.Add(time.Minute), time.Minute); err != nil {
		t.Fatal(err)
	}
	if a, _ := admit("mx.a.test", "l8", time.Minute, 2, 0, 0); a != ConnectionsFull {
		t.Fatalf("a lapsed lease came back with its renewal: %v", a)
	}
	if err := s.NoteDestination(ctx, "mx.a.test", now); err != nil {
		t.Fatal(err)
	}
	if list, err := s.ListDestinations(ctx, now, time.Hour, 10); err != nil || len(list) != 1 || list[0].Connections != 2 || list[0].SuspendedUntil != nil {
		t.Fatalf("listed %+v %v, want mx.a.test with 2 connections", list, err)
	}

	// Rate: 60 a minute with bursts of 3: three at once, then one a second.
	for i := range 3 {
		if a, _ := admit("mx.rate.test", "r", time.Second, 0, 60, 3); a != Admitted {
			t.Fatalf("burst message %d: %v", i, a)
		}
	}
	a, at := admit("mx.rate.test", "r", time.Second, 0, 60, 3)
	if a != RateLimited || !at.Equal(now.Add(time.Second)) {
		t.Fatalf("over the burst: %v at %v, want RateLimited at %v", a, at, now.Add(time.Second))
	}
	now = now.Add(time.Second)
	if a, _ := admit("mx.rate.test", "r", time.Second, 0, 60, 3); a != Admitted {
		t.Fatalf("a second later: %v", a)
	}

	// Suspension: 1 min, then 2, 4, capped at 5; a second back-off while
	// suspended keeps the time.
	base, maxd := time.Minute, 5*time.Minute
	for i, want := range []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 5 * time.Minute} {
		until, level, err := s.SuspendDestination(ctx, "google", now, base, maxd, "421 4.7.0 try again later")
		if err != nil {
			t.Fatal(err)
		}
		if !until.Equal(now.Add(want)) || level != i+1 {
			t.Fatalf("suspension %d: until %v level %d, want %v level %d", i+1, until.Sub(now), level, want, i+1)
		}
		again, _, err := s.SuspendDestination(ctx, "google", now.Add(time.Second), base, maxd, "421")
		if err != nil || !again.Equal(until) {
			t.Fatalf("back-off while suspended: %v %v, want %v", again, err, until)
		}
		if a, at := admit("google", "g", time.Minute, 0, 0, 0); a != Suspended || !at.Equal(until) {
			t.Fatalf("admission while suspended: %v %v", a, at)
		}
		now = until
	}
	if a, _ := admit("google", "g", time.Minute, 0, 0, 0); a != Admitted {
		t.Fatalf("after the suspension: %v", a)
	}
	now = now.Add(maxd + time.Second) // a quiet spell: the next one is short again
	if until, level, err := s.SuspendDestination(ctx, "google", now, base, maxd, "421"); err != nil || level != 1 || !until.Equal(now.Add(base)) {
		t.Fatalf("after a quiet spell: until %v level %d %v", until.Sub(now), level, err)
	}

	// The index: only what was noted within the window; the leases of
	// mx.a.test lapsed long ago.
	if err := s.NoteDestination(ctx, "google", now); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListDestinations(ctx, now, 10*time.Minute, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Name != "google" || list[0].SuspendedUntil == nil || list[0].Level != 1 || list[0].Reason != "421" {
		t.Fatalf("listed %+v, want google suspended", list)
	}
}

// BenchmarkAdmitDestination: what traffic shaping adds to a delivery
// attempt in Redis: the admission script (suspension, rate, lease) and
// the release of the lease.
func BenchmarkAdmitDestination(b *testing.B) {
	s := New(testkit.StartRedis(b).Client(b), time.Now)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		now := time.Now()
		id := "lease" + strconv.Itoa(i)
		a, _, err := s.AdmitDestination(ctx, "google", id, now, now.Add(time.Minute), 10, 0, 1)
		if err != nil || a != Admitted {
			b.Fatal(a, err)
		}
		if err := s.ReleaseDestinationLease(ctx, "google", id); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDestinationWaiting: a destination's queue depth counts each email
// deferred for it once, until its next attempt's time; the key lives a
// minute past the last one, by the caller's clock.
func TestDestinationWaiting(t *testing.T) {
	rdb := testkit.RedisClient(t)
	st := New(rdb, time.Now)
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC) // not Redis's clock
	waiting := func(at time.Time) int {
		t.Helper()
		list, err := st.ListDestinations(ctx, at, time.Hour, 10)
		if err != nil || len(list) != 1 || list[0].Name != "mx.a.test" {
			t.Fatalf("destinations %+v %v", list, err)
		}
		return list[0].Waiting
	}
	for _, d := range []struct {
		id  string
		due time.Duration
	}{{"em_1", time.Minute}, {"em_2", 5 * time.Minute}, {"em_1", 2 * time.Minute}} {
		if err := st.Deferred(ctx, "mx.a.test", d.id, now.Add(d.due), now); err != nil {
			t.Fatal(err)
		}
	}
	if n := waiting(now); n != 2 {
		t.Errorf("two emails deferred (one twice): %d waiting", n)
	}
	if n := waiting(now.Add(3 * time.Minute)); n != 1 {
		t.Errorf("after the first one's time: %d waiting, want 1", n)
	}
	if n := waiting(now.Add(5 * time.Minute)); n != 0 {
		t.Errorf("after both: %d waiting", n)
	}
	ttl, err := rdb.PTTL(ctx, DestWaitingKey("mx.a.test")).Result()
	if err != nil || ttl < 5*time.Minute || ttl > 6*time.Minute {
		t.Errorf("TTL %v %v, want 6 minutes from the caller's now", ttl, err)
	}
}
