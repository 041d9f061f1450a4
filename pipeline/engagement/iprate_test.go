package engagement

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// testClock is a clock the test moves by hand.
type testClock struct{ t atomic.Pointer[time.Time] }

func newTestClock(t time.Time) *testClock {
	c := &testClock{}
	c.t.Store(&t)
	return c
}

func (c *testClock) Now() time.Time { return *c.t.Load() }

func (c *testClock) Add(d time.Duration) {
	t := c.Now().Add(d)
	c.t.Store(&t)
}

// Issue 18: one client address walking many emails' ids used to record
// up to maxHitEvents hits per id, without end. Now it records at most
// tracking.max_hits_per_ip_per_minute; over it the pixel and the click
// answer as before (a click still gets its destination) and nothing is
// written, the hit counted rate_limited. Other addresses keep their own
// rate; an IPv6 /64 is one client; private addresses are limited only
// when asked; the bucket refills with the clock.
func TestTrackingHitsRatePerIP(t *testing.T) {
	clock := newTestClock(time.Now())
	const perMinute = 5
	svc, k := trackingService(t, Options{MaxHitsPerIPPerMinute: perMinute, Now: clock.Now})
	ctx := context.Background()
	emails := []*store.Email{deliveredEmail(t, svc, k), deliveredEmail(t, svc, k)}
	visitor := func(ip string) Visitor { return Visitor{Method: "GET", IP: ip, UserAgent: testBrowserUA} }
	// hit opens or clicks an email's first link, alternating across the
	// emails, and reports the destination a click answered.
	hit := func(n int, v Visitor) {
		t.Helper()
		e := emails[n%len(emails)]
		if n%2 == 0 {
			svc.RecordOpen(ctx, e.ID, v)
			return
		}
		dest, err := svc.ResolveClick(ctx, svc.signer.ClickID(e.ID, 0), v)
		if err != nil || dest != "https://e.test/a" {
			t.Fatalf("click %d from %s: %q, %v; a click over the rate must still redirect", n, v.IP, dest, err)
		}
	}
	recorded := func() int {
		t.Helper()
		settleHits(t, svc)
		n := 0
		for _, e := range emails {
			evs, err := svc.store.Events(ctx, e.ID)
			if err != nil {
				t.Fatal(err)
			}
			n += len(evs) - 1 // the delivery
		}
		return n
	}
	limited := func() float64 { return testutil.ToFloat64(svc.metrics.hits.WithLabelValues("rate_limited")) }

	want := 0
	step := func(name string, hits int, v Visitor, wantRecorded, wantLimited int) {
		t.Helper()
		before := limited()
		for n := range hits {
			hit(n, v)
		}
		want += wantRecorded
		if got := recorded(); got != want {
			t.Errorf("%s: %d hits recorded in all, want %d", name, got, want)
		}
		if got := limited() - before; got != float64(wantLimited) {
			t.Errorf("%s: %v hits counted rate_limited, want %d", name, got, wantLimited)
		}
	}
	step("a public address over its rate", perMinute+4, visitor("8.8.4.4"), perMinute, 4)
	step("another address", 2, visitor("1.1.1.1"), 2, 0)
	step("one IPv6 /64", perMinute, visitor("2a00:1450:4001:81c::1"), perMinute, 0)
	step("another address in that /64", 1, visitor("2a00:1450:4001:81c:ffff::2"), 0, 1)
	step("a private address", perMinute+3, visitor("10.1.2.3"), perMinute+3, 0)
	clock.Add(time.Minute / perMinute) // one hit's worth
	step("the first address, a fifth of a minute later", 2, visitor("8.8.4.4"), 1, 1)
	clock.Add(time.Hour) // a full bucket, not more
	step("the first address, an hour later", perMinute+1, visitor("8.8.4.4"), perMinute, 1)

	// A sealed click of mail whose record expired is counted on the
	// account's day: that is a write too.
	stats := func() string {
		day, err := svc.store.Stats(ctx, k.AccountID, []string{store.StatsDay(clock.Now())})
		if err != nil {
			t.Fatal(err)
		}
		return day[0][store.StatExpiredClicks]
	}
	sealed := svc.signer.SealedClickID(k.AccountID, "em_expired", 0, "https://e.test/old")
	for range 2 {
		if dest, err := svc.ResolveClick(ctx, sealed, visitor("8.8.4.4")); err != nil || dest != "https://e.test/old" {
			t.Fatalf("expired click over the rate: %q, %v", dest, err)
		}
	}
	if got := stats(); got != "" {
		t.Errorf("expired clicks over the rate counted: %q", got)
	}
	if dest, err := svc.ResolveClick(ctx, sealed, visitor("1.1.1.1")); err != nil || dest != "https://e.test/old" || stats() != "1" {
		t.Errorf("expired click within the rate: %q, %v, counted %q", dest, err, stats())
	}
}

// Private addresses are limited too when the operator says no proxy
// stands in front (LimitPrivateHits); 0 turns the limit off.
func TestTrackingHitsRateOptions(t *testing.T) {
	now := time.Now()
	l := newIPLimiter(2, true)
	for i, want := range []bool{true, true, false} {
		if got := l.allow("127.0.0.1", now); got != want {
			t.Errorf("loopback hit %d with private addresses limited: %v", i, got)
		}
	}
	l = newIPLimiter(0, true)
	for range 100 {
		if !l.allow("8.8.8.8", now) {
			t.Fatal("a hit refused with the limit off")
		}
	}
	l = newIPLimiter(1, false)
	for _, ip := range []string{"", "not an address", "10.0.0.1", "10.0.0.1", "::ffff:192.168.0.1", "::ffff:192.168.0.1"} {
		if !l.allow(ip, now) {
			t.Errorf("%q refused: only public addresses are limited by default", ip)
		}
	}
	if !l.allow("::ffff:8.8.8.8", now) || l.allow("8.8.8.8", now) {
		t.Error("an IPv4-mapped address has a bucket of its own")
	}
}

// The limiter holds at most two generations of addresses, however many
// an attacker uses; an address over its rate stays over it while it is
// seen, however many others come.
func TestTrackingHitsRateIsBounded(t *testing.T) {
	now := time.Now()
	l := newIPLimiter(1, false)
	l.perGen = 64
	if !l.allow("8.8.8.8", now) {
		t.Fatal("first hit refused")
	}
	for i := range 10_000 {
		l.allow(fmt.Sprintf("1.%d.%d.%d", i>>16&255, i>>8&255, i&255), now)
		if i%32 == 0 && l.allow("8.8.8.8", now) {
			t.Fatalf("after %d other addresses, the limited address got a hit through", i)
		}
		if n := l.size(); n > 2*l.perGen {
			t.Fatalf("%d addresses held, more than two generations of %d", n, l.perGen)
		}
	}
}
