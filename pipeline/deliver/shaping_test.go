package deliver

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/pigeonpost/pigeonpost/internal/clock"
	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// shapeRig drives delivery workers by hand on a fake clock: step releases
// the retries due at the fake time and has the workers attempt every
// entry at once (one goroutine each), so that what would be concurrent in
// production is concurrent here, and nothing waits for real time.
type shapeRig struct {
	t       *testing.T
	ctx     context.Context
	redis   *testkit.Redis
	rdb     *redis.Client
	st      *store.Store
	clk     *clock.Fake
	sink    *testkit.Sink
	dns     *testkit.DNS
	workers []*Worker
}

func newShapeRig(t *testing.T) *shapeRig {
	t.Helper()
	r := &shapeRig{t: t, ctx: context.Background(), redis: testkit.StartRedis(t),
		clk: clock.NewFake(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC))}
	r.rdb = r.redis.Client(t)
	r.rdb.AddHook(testkit.NewSlotChecker(t.Errorf)) // every script stays in one cluster slot
	r.st = store.New(r.rdb, r.clk.Now)
	if err := r.st.EnsureGroup(r.ctx); err != nil {
		t.Fatal(err)
	}
	r.sink = testkit.StartSink(t, testkit.SinkOptions{})
	r.dns = testkit.StartDNS(t)
	for _, d := range []string{"dest.test", "a.test", "b.test", "c.test"} {
		r.dns.SetMX(d, map[string]uint16{"mx." + d: 10})
		r.dns.SetA("mx."+d, "127.0.0.1")
	}
	// Two domains whose MX hosts are one provider.
	r.dns.SetMX("gmail.test", map[string]uint16{"gmail-smtp-in.l.google.test": 5})
	r.dns.SetMX("workspace.test", map[string]uint16{"aspmx.l.google.test": 1})
	r.dns.SetA("gmail-smtp-in.l.google.test", "127.0.0.1")
	r.dns.SetA("aspmx.l.google.test", "127.0.0.1")
	return r
}

// worker adds a worker as another process would have it: its own Redis
// client, store and Transport (and so its own idle sessions). shaping nil:
// no traffic shaping.
func (r *shapeRig) worker(shaping *Shaping) *Worker {
	st := store.New(r.redis.Client(r.t), r.clk.Now)
	if shaping != nil {
		s := *shaping
		s.Store = st
		s.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		shaping = &s
	}
	w := &Worker{
		Store: st,
		Transport: &Transport{Hostname: "pigeon.test", Port: r.sink.Port(), Timeout: 30 * time.Second, AllowPrivate: true,
			Resolver: &Resolver{Addr: r.dns.Addr(), Timeout: 5 * time.Second}},
		Concurrency:  8,
		RetryInitial: time.Minute,
		RetryMax:     30 * time.Minute,
		MaxAge:       72 * time.Hour,
		Consumer:     "w" + strconv.Itoa(len(r.workers)),
		Now:          r.clk.Now,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		Shaping:      shaping,
	}
	w.defaults()
	r.t.Cleanup(w.Transport.CloseIdle)
	r.workers = append(r.workers, w)
	return w
}

// queue persists and enqueues one email per recipient of one submission
// and returns their ids in order.
func (r *shapeRig) queue(to ...string) []string {
	r.t.Helper()
	var emails []store.NewEmail
	var ids []string
	for _, rcpt := range to {
		e := &store.Email{ID: store.NewID("em"), AccountID: "acc_1", KeyID: "key_1", Mode: store.ModeLive,
			Status: store.StatusPending, Source: "api", FromAddress: "news@acme.test", EnvelopeFrom: "news@acme.test",
			ToAddress: rcpt, Subject: "hello " + rcpt, CreatedAt: r.clk.Now()}
		body := "From: news@acme.test\r\nTo: " + rcpt + "\r\nSubject: hello\r\n\r\nhi\r\n"
		emails = append(emails, store.NewEmail{Email: e, Body: []byte(body)})
		ids = append(ids, e.ID)
	}
	if err := r.st.PersistWith(r.ctx, emails, store.PersistOptions{Enqueue: true}); err != nil {
		r.t.Fatal(err)
	}
	return ids
}

// step releases what is due at the fake time and has the workers attempt
// all of it at once, each its share. It returns how many entries were
// attempted.
func (r *shapeRig) step() int {
	r.t.Helper()
	if _, err := r.st.ReleaseDue(r.ctx, r.clk.Now(), 100000); err != nil {
		r.t.Fatal(err)
	}
	var wg sync.WaitGroup
	n := 0
	for {
		got := 0
		for _, w := range r.workers {
			entries, err := w.Store.ReadNew(r.ctx, w.Consumer, w.Concurrency, -1)
			if err != nil {
				r.t.Fatal(err)
			}
			for _, e := range entries {
				wg.Add(1)
				go func() { defer wg.Done(); w.process(e) }()
			}
			got += len(entries)
		}
		if got == 0 {
			break
		}
		n += got
	}
	wg.Wait()
	return n
}

// nextDue returns the earliest retry time on the schedule.
func (r *shapeRig) nextDue() (time.Time, bool) {
	r.t.Helper()
	z, err := r.rdb.ZRangeWithScores(r.ctx, store.RetryKey(), 0, 0).Result()
	if err != nil {
		r.t.Fatal(err)
	}
	if len(z) == 0 {
		return time.Time{}, false
	}
	return time.UnixMilli(int64(z[0].Score)).UTC(), true
}

// dueTimes returns every retry time on the schedule.
func (r *shapeRig) dueTimes() []time.Time {
	r.t.Helper()
	z, err := r.rdb.ZRangeWithScores(r.ctx, store.RetryKey(), 0, -1).Result()
	if err != nil {
		r.t.Fatal(err)
	}
	out := make([]time.Time, len(z))
	for i, m := range z {
		out[i] = time.UnixMilli(int64(m.Score)).UTC()
	}
	return out
}

// advance moves the fake clock to the next retry time (if later) and steps.
func (r *shapeRig) advance() bool {
	due, ok := r.nextDue()
	if !ok {
		return false
	}
	if due.After(r.clk.Now()) {
		r.clk.Set(due)
	}
	r.step()
	return true
}

// drain steps until nothing is left to retry, within a bound of steps.
func (r *shapeRig) drain() {
	r.t.Helper()
	for range 2000 {
		if !r.advance() {
			return
		}
	}
	r.t.Fatalf("still retrying after 2000 steps; next due %v", r.dueTimes()[:1])
}

func (r *shapeRig) email(id string) *store.Email {
	r.t.Helper()
	e, err := r.st.Email(r.ctx, id)
	if err != nil {
		r.t.Fatal(err)
	}
	return e
}

// TestLongOutageRetriesThenNoStorm (F6): a destination answers 4xx for six
// hours. Each message's retries double from retry_initial with ±10 %
// jitter up to retry_max, so each is attempted a bounded number of times,
// and the retries of messages that failed together are spread. When the
// destination recovers and the whole backlog is due at once, at most
// max_connections_per_destination connections are ever open at the
// destination (the sink counts them); the others are put back a couple of
// seconds, without counting an attempt, and each message arrives once.
func TestLongOutageRetriesThenNoStorm(t *testing.T) {
	r := newShapeRig(t)
	w := r.worker(&Shaping{MaxConnections: 3, LeaseTTL: 1000 * time.Hour})
	r.sink.Reply("rcpt", &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Mailbox temporarily unavailable"}, -1)
	const n = 24
	var to []string
	for i := range n {
		to = append(to, fmt.Sprintf("user%d@dest.test", i))
	}
	ids := r.queue(to...)
	start := r.clk.Now()

	tries := map[string][]time.Time{}
	seen := map[string]int{}
	record := func() {
		for _, id := range ids {
			if a := r.email(id).Attempts; a > seen[id] {
				seen[id] = a
				tries[id] = append(tries[id], r.clk.Now())
			}
		}
	}
	r.step()
	record()
	for range 2000 {
		due, ok := r.nextDue()
		if !ok {
			t.Fatal("nothing on the retry schedule during the outage")
		}
		if due.Sub(start) > 6*time.Hour {
			break
		}
		r.clk.Set(due)
		r.step()
		record()
	}
	for _, id := range ids {
		times := tries[id]
		// 1, 2, 4, 8, 16 minutes then 30: 5 + (360-31)/30 ≈ 16 within 6 h.
		if len(times) < 12 || len(times) > 18 {
			t.Fatalf("%s: %d attempts in 6 hours, want between 12 and 18", id, len(times))
		}
		for k := 1; k < len(times); k++ {
			base := min(time.Minute<<(k-1), 30*time.Minute)
			if gap := times[k].Sub(times[k-1]); gap < base-base/10 || gap > base+base/10+time.Millisecond {
				t.Fatalf("%s: gap before attempt %d is %v, want %v ±10%%", id, k+1, gap, base)
			}
		}
	}
	due := r.dueTimes()
	if len(due) != n {
		t.Fatalf("%d on the retry schedule, want %d", len(due), n)
	}
	perSecond := map[int64]int{}
	for _, d := range due {
		perSecond[d.Unix()]++
		if perSecond[d.Unix()] > 3 {
			t.Fatalf("more than 3 retries due in the second of %v: %v", d, due)
		}
	}
	if spread := due[len(due)-1].Sub(due[0]); spread < time.Minute {
		t.Fatalf("the backlog's retries are due within %v of each other, want them spread", spread)
	}

	// The destination recovers; the whole backlog comes due at once.
	r.sink.Reply("rcpt", nil, 0)
	r.sink.ResetMaxActive()
	before := map[string]int{}
	for _, id := range ids {
		before[id] = r.email(id).Attempts
	}
	r.clk.Set(due[len(due)-1].Add(time.Minute))
	r.step()
	r.drain()
	st := r.sink.Stats()
	if st.MaxActive > 3 {
		t.Errorf("%d connections open at once at the destination, limit 3", st.MaxActive)
	}
	if st.Messages != n {
		t.Errorf("destination got %d messages, want %d", st.Messages, n)
	}
	for i, id := range ids {
		e := r.email(id)
		if e.Status != store.StatusDelivered || len(r.sink.To(to[i])) != 1 {
			t.Errorf("%s: %s, %d copies", to[i], e.Status, len(r.sink.To(to[i])))
		}
		if e.Attempts != before[id]+1 {
			t.Errorf("%s: attempts %d after recovery, want %d: a postponement counted", id, e.Attempts, before[id]+1)
		}
	}
	if got := testutil.ToFloat64(w.Metrics.postponed.WithLabelValues("connections", "other")); got == 0 {
		t.Error("no message was held back at the connection limit: the test did not exercise it")
	}
}
