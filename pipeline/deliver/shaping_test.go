package deliver

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
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
	if err := r.st.EnsureGroup(r.ctx, 0); err != nil {
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
	if _, err := r.st.ReleaseDue(r.ctx, 0, r.clk.Now(), 100000); err != nil {
		r.t.Fatal(err)
	}
	var wg sync.WaitGroup
	n := 0
	for {
		got := 0
		for _, w := range r.workers {
			entries, err := w.Store.ReadNew(r.ctx, 0, w.Consumer, w.Concurrency, -1)
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
	z, err := r.rdb.ZRangeWithScores(r.ctx, store.RetryKey(0), 0, 0).Result()
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
	z, err := r.rdb.ZRangeWithScores(r.ctx, store.RetryKey(0), 0, -1).Result()
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
	w := r.worker(&Shaping{MaxConnections: 3, LeaseTTL: 1000 * time.Hour, SlotWait: -1})
	r.sink.Reply("rcpt", &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Mailbox temporarily unavailable"}, -1)
	const n = 12
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

// TestPerRecipientResultsAcrossDestinations (F6, F7): one submission to
// recipients at three destinations. The one whose server refuses the
// mailbox (550 5.1.1) is bounced at once and never tried again; the one
// whose server answers 452 is deferred and delivered on its retry; the
// third is delivered at once. Each ends with one copy at most, and no
// destination is suspended: none of these replies asks to back off.
func TestPerRecipientResultsAcrossDestinations(t *testing.T) {
	r := newShapeRig(t)
	r.worker(&Shaping{MaxConnections: 10, LeaseTTL: 1000 * time.Hour, SlotWait: -1})
	r.sink.ReplyRcpt("gone@b.test", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user"}, -1)
	r.sink.ReplyRcpt("full@c.test", &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "Mailbox full"}, 1)
	ids := r.queue("ok@a.test", "gone@b.test", "full@c.test")

	r.step()
	type outcome struct {
		status           store.Status
		attempts, copies int
	}
	want := []outcome{{store.StatusDelivered, 1, 1}, {store.StatusBounced, 1, 0}, {store.StatusSent, 1, 0}}
	check := func(when string) {
		t.Helper()
		for i, id := range ids {
			e := r.email(id)
			if e.Status != want[i].status || e.Attempts != want[i].attempts || len(r.sink.To(e.ToAddress)) != want[i].copies {
				t.Errorf("%s: %s: %s after %d attempts, %d copies; want %s, %d, %d (last error %q)", when, e.ToAddress,
					e.Status, e.Attempts, len(r.sink.To(e.ToAddress)), want[i].status, want[i].attempts, want[i].copies, e.LastError)
			}
		}
	}
	check("first attempt")
	if due := r.dueTimes(); len(due) != 1 || due[0].Sub(r.clk.Now()) < 54*time.Second || due[0].Sub(r.clk.Now()) > 66*time.Second {
		t.Fatalf("retry schedule %v, want only full@c.test, in retry_initial (1m ±10%%)", due)
	}
	r.drain()
	want[2] = outcome{store.StatusDelivered, 2, 1}
	check("after the retry")
	if n := r.sink.Stats().Messages; n != 2 {
		t.Errorf("destination got %d messages, want 2", n)
	}
	// One destination deferred mail (c.test's 452), none was suspended.
	if list, err := r.st.ListDestinations(r.ctx, r.clk.Now(), time.Hour, 10); err != nil || len(list) != 1 ||
		list[0].Name != "mx.c.test" || list[0].SuspendedUntil != nil || list[0].Waiting != 0 {
		t.Errorf("destinations %+v %v, want only mx.c.test, not suspended, nothing waiting now", list, err)
	}
}

// TestGreylistedThenAcceptedOnRetry (F6): a destination greylists (451
// 4.7.1 for each new sender and recipient until 5 minutes have passed).
// The message is retried on its own schedule (after 1 and 2 minutes:
// refused again; after 4 more: accepted) and delivered once. Greylisting
// does not suspend the destination: a message for another recipient
// there, queued meanwhile, is attempted at once, not held back.
func TestGreylistedThenAcceptedOnRetry(t *testing.T) {
	r := newShapeRig(t)
	w := r.worker(&Shaping{MaxConnections: 10, LeaseTTL: 1000 * time.Hour, SlotWait: -1})
	r.sink.Greylist(5*time.Minute, r.clk.Now)
	first := r.queue("new@dest.test")[0]
	r.step()
	if e := r.email(first); e.Status != store.StatusSent || e.Attempts != 1 {
		t.Fatalf("after the first attempt: %s, %d attempts", e.Status, e.Attempts)
	}
	// Deferred, not suspended: the destination lists one email waiting.
	if list, err := r.st.ListDestinations(r.ctx, r.clk.Now(), time.Hour, 10); err != nil || len(list) != 1 ||
		list[0].Name != "mx.dest.test" || list[0].Waiting != 1 || list[0].SuspendedUntil != nil {
		t.Errorf("after a greylisting deferral: destinations %+v %v, want mx.dest.test with one waiting", list, err)
	}
	r.clk.Advance(30 * time.Second)
	other := r.queue("other@dest.test")[0]
	r.step()
	if e := r.email(other); e.Attempts != 1 {
		t.Fatalf("another recipient at the greylisting destination: %d attempts, want 1 (%s)", e.Attempts, e.LastError)
	}
	r.drain()
	for _, id := range []string{first, other} {
		e := r.email(id)
		if e.Status != store.StatusDelivered || e.Attempts != 4 || len(r.sink.To(e.ToAddress)) != 1 {
			t.Errorf("%s: %s after %d attempts, %d copies; want delivered on the 4th attempt, once", e.ToAddress, e.Status, e.Attempts, len(r.sink.To(e.ToAddress)))
		}
	}
	if list, err := r.st.ListDestinations(r.ctx, r.clk.Now(), time.Hour, 10); err != nil || len(list) != 1 ||
		list[0].SuspendedUntil != nil || list[0].Level != 0 || list[0].Waiting != 0 {
		t.Errorf("after delivery: destinations %+v %v, want mx.dest.test never suspended, nothing waiting", list, err)
	}
	if n := testutil.CollectAndCount(w.Metrics.postponed); n != 0 {
		t.Errorf("%d postponement series: greylisting held mail back", n)
	}
}

// TestBackOffSuspendsDestinationAcrossWorkers (F6; issue 15 item 7): two
// workers with their own Transports share one Redis. The provider (two
// domains whose MX hosts are both Google's: one destination) answers 451
// 4.7.1 "rate limited, try again later". The first replies suspend the
// provider for a minute: the other messages, whichever worker holds them,
// are put back to the end of the suspension without a connection (the
// sink sees none during the window), the suspension doubles when the
// provider still refuses at its end, and once the provider accepts again
// every message is delivered once. The connection limit of 2 holds over
// both workers throughout, and the failed attempts are bounded by it per
// wave, not by the number of messages.
func TestBackOffSuspendsDestinationAcrossWorkers(t *testing.T) {
	r := newShapeRig(t)
	shaping := &Shaping{MaxConnections: 2, SuspendMin: time.Minute, SuspendMax: 30 * time.Minute, LeaseTTL: 1000 * time.Hour, SlotWait: -1,
		Groups: []Group{{Name: "google", Suffixes: []string{".google.test"}}}}
	w0, w1 := r.worker(shaping), r.worker(shaping)
	r.sink.Reply("rcpt", &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1},
		Message: "Our system has detected an unusual rate of mail, rate limited, try again later"}, -1)
	var to []string
	for i := range 10 {
		to = append(to, fmt.Sprintf("a%d@gmail.test", i), fmt.Sprintf("b%d@workspace.test", i))
	}
	ids := r.queue(to...)
	attempts := func() int {
		n := 0
		for _, id := range ids {
			n += r.email(id).Attempts
		}
		return n
	}

	// wave waits out a suspension: it steps through every retry due
	// before the provider's suspension ends, checking that nothing
	// reaches the provider, and returns the suspension's end.
	wave := func(level int) time.Time {
		t.Helper()
		list, err := r.st.ListDestinations(r.ctx, r.clk.Now(), time.Hour, 10)
		if err != nil || len(list) != 1 || list[0].Name != "google" || list[0].SuspendedUntil == nil || list[0].Level != level {
			t.Fatalf("destinations %+v %v, want google suspended at level %d", list, err, level)
		}
		if list[0].Waiting != len(ids) {
			t.Errorf("google's queue depth %d, want all %d emails", list[0].Waiting, len(ids))
		}
		until := *list[0].SuspendedUntil
		conns, tries := r.sink.Stats().Connections, attempts()
		for {
			due, ok := r.nextDue()
			if !ok || !due.Before(until) {
				break
			}
			r.clk.Set(due)
			r.step()
		}
		if c, a := r.sink.Stats().Connections, attempts(); c != conns || a != tries {
			t.Fatalf("while suspended until %v: %d connections and %d attempts more", until, c-conns, a-tries)
		}
		return until
	}

	r.step()
	first := attempts()
	if first < 1 || first > 2 {
		t.Fatalf("%d attempts before the provider was suspended, want 1 or 2 (the connection limit)", first)
	}
	until := wave(1)
	if d := until.Sub(r.clk.Now()); d > time.Minute {
		t.Fatalf("first suspension ends in %v, want a minute", d)
	}

	// At the end of the suspension the provider still refuses: the first
	// retries suspend it again, for two minutes.
	r.clk.Set(until)
	before := attempts()
	for range 100 {
		if _, ok := r.nextDue(); !ok {
			t.Fatal("nothing left to retry")
		}
		r.advance()
		if attempts() > before {
			break
		}
	}
	if a := attempts() - before; a < 1 || a > 2 {
		t.Fatalf("%d attempts at the end of the first suspension, want 1 or 2", a)
	}
	wave(2)

	// The provider accepts again.
	r.sink.Reply("rcpt", nil, 0)
	r.drain()
	for i, id := range ids {
		if e := r.email(id); e.Status != store.StatusDelivered || len(r.sink.To(to[i])) != 1 {
			t.Errorf("%s: %s, %d copies", to[i], e.Status, len(r.sink.To(to[i])))
		}
	}
	if a := attempts(); a > len(ids)+4 {
		t.Errorf("%d attempts for %d messages: more than two failed per wave", a, len(ids))
	}
	if st := r.sink.Stats(); st.MaxActive > 2 {
		t.Errorf("%d connections open at once at the provider, limit 2", st.MaxActive)
	}
	postponed := testutil.ToFloat64(w0.Metrics.postponed.WithLabelValues("suspended", "google")) +
		testutil.ToFloat64(w1.Metrics.postponed.WithLabelValues("suspended", "google"))
	if postponed == 0 {
		t.Error("no message was put back for the suspension")
	}
}

func TestProviderBackOff(t *testing.T) {
	cases := []struct {
		e    Error
		want bool
	}{
		{Error{Temporary: true, Code: 421, Enhanced: [3]int{4, 7, 0}, Message: "Try again later, closing connection"}, true},
		{Error{Temporary: true, Code: 421, Enhanced: [3]int{4, 0, 0}, Message: "Service not available"}, true}, // at connect
		{Error{Temporary: true, Code: 421, Enhanced: [3]int{4, 4, 2}, Message: "Idle timeout, bye bye"}, false},
		{Error{Temporary: true, Code: 451, Enhanced: [3]int{4, 7, 1}, Message: "Rate limited, try again later"}, true},
		{Error{Temporary: true, Code: 450, Enhanced: [3]int{4, 7, 0}, Message: "Too many messages from your IP"}, true},
		{Error{Temporary: true, Code: 451, Enhanced: [3]int{4, 7, 1}, Message: "Greylisted, please try again later"}, false},
		{Error{Temporary: true, Code: 421, Enhanced: [3]int{4, 7, 0}, Message: "greylisting in action"}, false},
		{Error{Temporary: true, Code: 451, Enhanced: [3]int{4, 3, 0}, Message: "Try again later"}, false}, // not policy
		{Error{Temporary: true, Code: 452, Enhanced: [3]int{4, 2, 2}, Message: "Mailbox full"}, false},
		{Error{Code: 550, Enhanced: [3]int{5, 7, 1}, Message: "Too many: rate limited"}, false}, // permanent
		{Error{Temporary: true, Enhanced: [3]int{4, 4, 1}, Message: "cannot connect"}, false},   // no reply
	}
	for _, c := range cases {
		if got := ProviderBackOff(&c.e); got != c.want {
			t.Errorf("%v: %v, want %v", c.e.Error(), got, c.want)
		}
	}
}

// TestRunSharedLimitAgainstThrottlingSink: two running workers (Run, real
// time, their own Transports) share one Redis and deliver to a provider
// that answers 421 4.7.0 after 2 messages on a connection. The 421s
// suspend the provider briefly (tens of milliseconds here) rather than
// each message retrying on its own; the connection limit of 1 holds over
// both workers, idle sessions included (a worker takes over the other's
// idle session, so connections carry more than one message and meet
// the 421); every message arrives once.
func TestRunSharedLimitAgainstThrottlingSink(t *testing.T) {
	rs := testkit.StartRedis(t)
	throttle := testkit.StartSink(t, testkit.SinkOptions{MaxMessagesPerConnection: 2})
	dnsSrv := testkit.StartDNS(t)
	dnsSrv.SetMX("gmail.test", map[string]uint16{"gmail-smtp-in.l.google.test": 5})
	dnsSrv.SetA("gmail-smtp-in.l.google.test", "127.0.0.1")
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	var first *store.Store
	var workers []*Worker
	for i := range 2 {
		st := store.New(rs.Client(t), time.Now)
		if first == nil {
			first = st
		}
		w := &Worker{
			Store: st,
			Transport: &Transport{Hostname: "pigeon.test", Port: throttle.Port(), Timeout: 30 * time.Second, AllowPrivate: true,
				Resolver: &Resolver{Addr: dnsSrv.Addr(), Timeout: 5 * time.Second}},
			Concurrency:  6,
			RetryInitial: 10 * time.Millisecond,
			RetryMax:     100 * time.Millisecond,
			MaxAge:       time.Hour,
			ClaimIdle:    time.Hour,
			Consumer:     "run" + strconv.Itoa(i),
			Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
			Shaping: &Shaping{Store: st, MaxConnections: 1, SuspendMin: 20 * time.Millisecond, SuspendMax: 100 * time.Millisecond,
				BusyDelay: 20 * time.Millisecond, Groups: []Group{},
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))},
		}
		workers = append(workers, w)
		wg.Add(1)
		go func() { defer wg.Done(); w.Run(ctx) }()
	}
	const n = 8
	var emails []store.NewEmail
	for i := range n {
		rcpt := fmt.Sprintf("u%d@gmail.test", i)
		e := &store.Email{ID: store.NewID("em"), AccountID: "acc_1", KeyID: "key_1", Mode: store.ModeLive,
			Status: store.StatusPending, Source: "api", FromAddress: "news@acme.test", EnvelopeFrom: "news@acme.test",
			ToAddress: rcpt, Subject: "hi", CreatedAt: time.Now().UTC()}
		emails = append(emails, store.NewEmail{Email: e, Body: []byte("Subject: hi\r\n\r\nhi\r\n")})
	}
	if err := first.PersistWith(context.Background(), emails, store.PersistOptions{Enqueue: true}); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "every message delivered", func() bool { return throttle.Stats().Messages >= n })
	for _, e := range emails {
		if got := len(throttle.To(e.Email.ToAddress)); got != 1 {
			t.Errorf("%s: %d copies", e.Email.ToAddress, got)
		}
	}
	if st := throttle.Stats(); st.MaxActive > 1 {
		t.Errorf("%d connections open at once at the provider, limit 1 (%+v)", st.MaxActive, st)
	}
	suspensions := testutil.ToFloat64(workers[0].Metrics.suspensions.WithLabelValues("other")) +
		testutil.ToFloat64(workers[1].Metrics.suspensions.WithLabelValues("other"))
	if suspensions == 0 {
		t.Error("the 421s did not suspend the provider")
	}
}

// TestRelayHostNotShaped: mail through delivery.relay_host goes out
// whatever the shaping state of that host: the smarthost is the
// operator's, which shapes its own traffic.
func TestRelayHostNotShaped(t *testing.T) {
	r := newShapeRig(t)
	w := r.worker(&Shaping{MaxConnections: 1, LeaseTTL: 1000 * time.Hour, SlotWait: -1})
	w.Transport.RelayHost = r.sink.Addr()
	if _, _, err := r.st.SuspendDestination(r.ctx, "127.0.0.1", r.clk.Now(), time.Hour, time.Hour, "421"); err != nil {
		t.Fatal(err)
	}
	id := r.queue("x@dest.test")[0]
	r.step()
	if e := r.email(id); e.Status != store.StatusDelivered {
		t.Fatalf("through the relay host: %s (%s)", e.Status, e.LastError)
	}
}

// TestHeldPastMaxAgeFails: mail held back by a suspended destination is
// not held forever: past delivery.max_age it fails, without a connection,
// having never been attempted.
func TestHeldPastMaxAgeFails(t *testing.T) {
	r := newShapeRig(t)
	w := r.worker(&Shaping{LeaseTTL: 1000 * time.Hour, SlotWait: -1})
	w.MaxAge = time.Hour
	if _, _, err := r.st.SuspendDestination(r.ctx, "mx.dest.test", r.clk.Now(), 100*time.Hour, 100*time.Hour, "421 4.7.0 try again later"); err != nil {
		t.Fatal(err)
	}
	id := r.queue("x@dest.test")[0]
	r.step()
	if e := r.email(id); e.Status != store.StatusPending || e.Attempts != 0 {
		t.Fatalf("held: %s after %d attempts, want pending, not attempted", e.Status, e.Attempts)
	}
	r.clk.Advance(2 * time.Hour)
	// Due now, while the destination is still suspended.
	if err := r.rdb.ZAdd(r.ctx, store.RetryKey(0), redis.Z{Score: float64(r.clk.Now().UnixMilli()), Member: id}).Err(); err != nil {
		t.Fatal(err)
	}
	r.step()
	e := r.email(id)
	if e.Status != store.StatusFailed || e.Attempts != 0 || r.sink.Stats().Connections != 0 {
		t.Fatalf("past max_age: %s after %d attempts, %d connections; want failed, none (%s)", e.Status, e.Attempts, r.sink.Stats().Connections, e.LastError)
	}
	if due := r.dueTimes(); len(due) != 0 {
		t.Fatalf("still scheduled: %v", due)
	}
}

// TestIdleSessionCarriesTheNextMessage: messages to a destination one
// after another go over the session the first one opened, under its one
// connection lease: no lease is taken and given back per message (two
// fsynced writes each), only the first.
func TestIdleSessionCarriesTheNextMessage(t *testing.T) {
	r := newShapeRig(t)
	r.worker(&Shaping{MaxConnections: 10, LeaseTTL: 1000 * time.Hour, SlotWait: -1})
	leases := 0
	for i := range 5 {
		r.queue(fmt.Sprintf("u%d@dest.test", i))
		if err := r.rdb.ConfigResetStat(r.ctx).Err(); err != nil {
			t.Fatal(err)
		}
		if n := r.step(); n != 1 {
			t.Fatalf("step %d attempted %d", i, n)
		}
		// Leases are taken with ZADD (destAdmit); nothing else a
		// delivery does adds to a sorted set.
		stats, err := r.rdb.Info(r.ctx, "commandstats").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(stats, "\r\n") {
			if rest, ok := strings.CutPrefix(line, "cmdstat_zadd:calls="); ok {
				n, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
				leases += n
			}
		}
	}
	if st := r.sink.Stats(); st.Messages != 5 || st.Connections != 1 {
		t.Fatalf("sink: %d messages over %d connections, want 5 over 1", st.Messages, st.Connections)
	}
	if leases != 1 {
		t.Errorf("%d connection leases taken for 5 messages over one session, want 1", leases)
	}
}
