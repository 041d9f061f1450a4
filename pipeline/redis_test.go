package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

func TestAdmitRateLimitsAndSuppresses(t *testing.T) {
	rdb := testkit.StartRedis(t).Client(t)
	ctx := context.Background()
	l := RateLimit{PerSecond: 10, Burst: 5}
	now := time.UnixMilli(1_000_000_000)
	one := []string{"a@example.test"}
	// A burst of 5 passes at once, the 6th waits ~100 ms.
	for i := range 5 {
		if _, err := l.admit(ctx, rdb, "acct_a", one, now, true); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	_, err := l.admit(ctx, rdb, "acct_a", one, now, true)
	e := AsError(err)
	if err == nil || !errors.Is(err, ErrRateLimited) || e.SMTPCode != 451 || e.RetryAfter <= 0 || e.RetryAfter > 100*time.Millisecond {
		t.Fatalf("6th send: %v (retry after %v)", err, e.RetryAfter)
	}
	// Another account is not affected; the first recovers with time.
	if _, err := l.admit(ctx, rdb, "acct_b", one, now, true); err != nil {
		t.Fatal(err)
	}
	if _, err := l.admit(ctx, rdb, "acct_a", one, now.Add(100*time.Millisecond), true); err != nil {
		t.Fatalf("after 100 ms: %v", err)
	}
	// A request larger than the burst is charged as the burst, not refused forever.
	many := make([]string, 50)
	for i := range many {
		many[i] = fmt.Sprintf("r%d@example.test", i)
	}
	if _, err := l.admit(ctx, rdb, "acct_c", many, now, true); err != nil {
		t.Fatalf("cost over burst: %v", err)
	}

	// Suppressed recipients are reported (whatever their case) and not
	// charged; when all are, nothing is charged.
	st := store.New(rdb, time.Now)
	for _, addr := range []string{"gone@example.test", "Bounced@Example.test"} {
		if err := st.Suppress(ctx, "acct_d", addr, "bounce"); err != nil {
			t.Fatal(err)
		}
	}
	got, err := l.admit(ctx, rdb, "acct_d", []string{"GONE@example.test", "ok@example.test", "bounced@example.test"}, now, true)
	if err != nil || !slices.Equal(got, []bool{true, false, true}) {
		t.Fatalf("suppressed %v, %v", got, err)
	}
	for range 20 {
		if got, err := l.admit(ctx, rdb, "acct_d", []string{"gone@example.test", "bounced@example.test"}, now, true); err != nil || !slices.Equal(got, []bool{true, true}) {
			t.Fatalf("all suppressed: %v, %v", got, err)
		}
	}
	for i := range 4 { // the burst less the one send charged above
		if _, err := l.admit(ctx, rdb, "acct_d", one, now, true); err != nil {
			t.Fatalf("send %d after the suppressed ones: %v", i, err)
		}
	}

	// Only looking (a preview), past the burst: the suppressed recipients
	// are told and nothing is charged, to the rate or to the month.
	for range 20 {
		if got, err := l.admit(ctx, rdb, "acct_d", []string{"gone@example.test", "ok@example.test"}, now, false); err != nil || !slices.Equal(got, []bool{true, false}) {
			t.Fatalf("looking: %v, %v", got, err)
		}
	}
	if _, err := l.admit(ctx, rdb, "acct_d", one, now, true); !errors.Is(err, ErrRateLimited) {
		t.Errorf("a send past the burst after looking: %v", err)
	}
	if n, err := rdb.Get(ctx, store.UsageKey("acct_d", Month(now))).Int(); err != nil || n != 5 {
		t.Errorf("the month's count is %d (%v), want the 5 sends", n, err)
	}
}

// The startup guard: every setting that can lose acknowledged mail is named.
func TestDurabilityProblems(t *testing.T) {
	r := testkit.StartRedis(t)
	if !r.Real() {
		t.Skip("CONFIG needs redis-server; .ci/run installs it and sets PIGEONPOST_REQUIRE_REDIS")
	}
	rdb := r.Client(t)
	ctx := context.Background()
	problems, err := DurabilityProblems(ctx, rdb)
	if err != nil || len(problems) != 0 {
		t.Fatalf("testkit's redis (appendonly yes, fsync always): %v %v", problems, err)
	}
	for _, c := range []struct{ key, value, want string }{
		{"appendfsync", "everysec", "appendfsync"},
		{"maxmemory-policy", "allkeys-lru", "maxmemory-policy"},
		{"appendonly", "no", "appendonly"},
	} {
		if err := rdb.ConfigSet(ctx, c.key, c.value).Err(); err != nil {
			t.Fatal(err)
		}
		problems, err := DurabilityProblems(ctx, rdb)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.Join(problems, "\n"), c.want) {
			t.Errorf("after %s %s: %v", c.key, c.value, problems)
		}
	}
}

// On a cluster every node is checked, replicas too, and a problem names
// its node.
func TestDurabilityProblemsCluster(t *testing.T) {
	c := testkit.StartRedisCluster(t, 3, 1)
	rdb := c.Client(t)
	ctx := context.Background()
	if problems, err := DurabilityProblems(ctx, rdb); err != nil || len(problems) != 0 {
		t.Fatalf("testkit's cluster (appendonly yes, fsync always): %v %v", problems, err)
	}
	replica := c.Nodes[len(c.Nodes)-1]
	cl := redis.NewClient(&redis.Options{Addr: replica.Addr})
	defer cl.Close()
	if err := cl.ConfigSet(ctx, "appendfsync", "everysec").Err(); err != nil {
		t.Fatal(err)
	}
	problems, err := DurabilityProblems(ctx, rdb)
	if err != nil || len(problems) != 1 || !strings.HasPrefix(problems[0], replica.Addr+": appendfsync is") {
		t.Fatalf("with appendfsync everysec on replica %s: %q, %v", replica.Addr, problems, err)
	}
}

// Persist is all or nothing: with Redis refusing writes (OOM under
// noeviction), Submit returns a temporary storage error and stores nothing.
func TestSubmitStoresNothingWhenRedisRefuses(t *testing.T) {
	r := testkit.StartRedis(t)
	if !r.Real() {
		t.Skip("maxmemory needs redis-server; .ci/run installs it and sets PIGEONPOST_REQUIRE_REDIS")
	}
	rdb := r.Client(t)
	ctx := context.Background()
	st := store.New(rdb, time.Now)
	svc := New(st, nil, Options{Hostname: "gw.test", PublicURL: "https://t.test", RateLimit: RateLimit{PerSecond: 100, Burst: 100}})
	k := testKey(t, st, "default", "sp_test_0123456789abcdefghijklmn")
	sub := Submission{Key: k, Source: "api", EnvelopeFrom: "a@acme.test", Recipients: []string{"b@x.test"},
		Message: []byte("From: a@acme.test\r\n\r\n" + strings.Repeat("x", 200_000))}
	if err := rdb.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	_, err := svc.Submit(ctx, sub)
	_ = rdb.ConfigSet(ctx, "maxmemory", "0").Err()
	e := AsError(err)
	if err == nil || !e.Temporary || e.HTTPStatus != 503 {
		t.Fatalf("Submit under OOM: %v", err)
	}
	if n := testkit.RedisKeys(t, rdb, store.EmailKey("*")); len(n) != 0 {
		t.Fatalf("%d email records stored by a refused submission", len(n))
	}
	if _, err := svc.Submit(ctx, sub); err != nil {
		t.Fatalf("after memory is back: %v", err)
	}
}

// With more mail queued for delivery than the backlog limit, live
// submissions wait the in-flow delay (counted); below it, or for test
// keys, they do not.
func TestInFlowControl(t *testing.T) {
	svc, live, test := benchService(t, time.Second, func(o *Options) {
		o.InFlow = InFlow{BacklogLimit: 3, Delay: time.Millisecond}
	})
	ctx := context.Background()
	msg := testkit.LoadMessage(1024, 1)
	submit := func(k *store.Key) {
		t.Helper()
		if _, err := svc.Submit(ctx, Submission{Key: k, Source: "api", EnvelopeFrom: benchFrom, Recipients: []string{benchRcpt}, Message: msg}); err != nil {
			t.Fatal(err)
		}
	}
	delays := func() float64 { return testutil.ToFloat64(svc.opt.Metrics.inFlowDelays) }
	backlogIs := func(n int64) func() bool {
		return func() bool { svc.refreshBacklog(); return svc.backlog.Load() == n }
	}
	for range 3 { // the queue is at the limit, not over it
		submit(live)
	}
	testkit.WaitFor(t, "the backlog of 3 to be read", backlogIs(3))
	submit(live)
	testkit.WaitFor(t, "the backlog of 4 to be read", backlogIs(4))
	submit(test)
	if d := delays(); d != 0 {
		t.Fatalf("%v submissions delayed: at the limit, or in test mode", d)
	}
	submit(live)
	if d := delays(); d != 1 {
		t.Fatalf("%v submissions delayed over the limit, want 1", d)
	}
}
