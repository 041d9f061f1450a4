package reputation_test

import (
	"context"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline/reputation"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// The counts come from the events (store's count script, tested through
// the whole stack in cmd/pigeonpost); here they are written directly, to
// pin the guard's arithmetic: the window, the minimum volume, each limit
// exclusive.
func TestObserve(t *testing.T) {
	now := time.Date(2026, 12, 7, 10, 30, 0, 0, time.UTC)
	hour := store.ReputationHour(now)
	cases := []struct {
		name string
		// counts[i] are delivered, bounced, complained i hours ago
		counts [][3]int64
		want   string // the pause reason, "" for none
	}{
		{"under the minimum volume", [][3]int64{{50, 49, 40}}, ""},
		{"bounces at the limit", [][3]int64{{95, 5, 0}}, ""},
		{"bounces over the limit", [][3]int64{{94, 6, 0}}, reputation.ReasonBounceRate},
		{"complaints at the limit", [][3]int64{{100, 0, 1}}, ""},
		{"complaints over the limit", [][3]int64{{100, 0, 2}}, reputation.ReasonComplaintRate},
		{"summed over the window", [][3]int64{{50, 3, 0}, {0, 0, 0}, {44, 3, 0}}, reputation.ReasonBounceRate},
		{"older hours do not count", [][3]int64{{94, 0, 0}, {0, 0, 0}, {0, 0, 0}, {0, 6, 0}}, ""},
	}
	r := testkit.StartRedis(t)
	rdb := r.Client(t)
	ctx := context.Background()
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			account := string(rune('a' + i))
			for ago, n := range c.counts {
				key := store.ReputationKey(0, account, hour-int64(ago))
				for j, field := range []string{store.StatDelivered, store.StatBounced, store.StatComplained} {
					if n[j] > 0 {
						rdb.HIncrBy(ctx, key, field, n[j])
					}
				}
			}
			st := store.New(rdb, func() time.Time { return now })
			g := reputation.New(st, reputation.Options{AutoPause: true, Window: 3 * time.Hour, MinVolume: 100,
				MaxBounceRate: 0.05, MaxComplaintRate: 0.01, Now: func() time.Time { return now }})
			if err := g.Observe(ctx, account); err != nil {
				t.Fatal(err)
			}
			s, err := g.State(ctx, account)
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if s.Pause != nil {
				got = s.Pause.Reason
			}
			if got != c.want {
				t.Fatalf("pause %q, want %q (window %s)", got, c.want, s.Window)
			}
			if paused, _ := g.Paused(ctx, account); paused != (c.want != "") {
				t.Errorf("Paused = %v", paused)
			}
		})
	}
}

// Without auto_pause the guard reads the rates and pauses nothing.
func TestObserveOff(t *testing.T) {
	r := testkit.StartRedis(t)
	rdb := r.Client(t)
	ctx := context.Background()
	now := time.Now()
	rdb.HIncrBy(ctx, store.ReputationKey(0, "acct", store.ReputationHour(now)), store.StatBounced, 1000)
	g := reputation.New(store.New(rdb, time.Now), reputation.Options{Window: time.Hour, MinVolume: 1, MaxBounceRate: 0.05, MaxComplaintRate: 0.01})
	if err := g.Observe(ctx, "acct"); err != nil {
		t.Fatal(err)
	}
	if s, err := g.State(ctx, "acct"); err != nil || s.Pause != nil || s.Window.BounceRate != 1 {
		t.Fatalf("state %+v, %v", s, err)
	}
}
