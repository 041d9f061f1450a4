package deliver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/failpoint"
	"github.com/pigeonpost/pigeonpost/internal/retry"

	"github.com/pigeonpost/pigeonpost/internal/membudget"
	"github.com/pigeonpost/pigeonpost/pipeline/dkim"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
	"github.com/pigeonpost/pigeonpost/tracking"
)

// Worker delivers queued emails: it reads the stream through the consumer
// group, signs with the From domain's DKIM key, hands the message to the
// Transport and records the outcome on the email before acknowledging the
// entry. Temporary failures go to the retry schedule with exponential
// backoff; permanent ones bounce (and hard bounces suppress the address).
type Worker struct {
	Store        *store.Store
	Transport    *Transport
	Concurrency  int
	RetryInitial time.Duration
	RetryMax     time.Duration
	MaxAge       time.Duration // after this age a temporary failure becomes final
	// ClaimIdle is the last resort: entries pending longer than this are
	// taken over even from a worker that says it is alive (a stuck one).
	ClaimIdle time.Duration
	// AliveTTL is how long the worker's liveness key outlives its last
	// renewal (every second); the entries of a worker whose key is gone
	// (killed) are taken over at once. Default: 10 s.
	AliveTTL time.Duration
	Consumer string // name in the consumer group; empty: host-pid-random
	Now      func() time.Time
	Logger   *slog.Logger
	Metrics  *Metrics
	// Budget, when set, bounds the memory of the bodies being delivered: a
	// body over 64 KiB is read back from Redis only once its size is
	// reserved (the SMTP server shares the budget). Nil: unbounded.
	Budget *membudget.Budget
	// Reputation, when set, holds back the mail of paused accounts and
	// hears of every bounce (pipeline/reputation).
	Reputation Reputation
	// Signer signs the id each email carries in tracking.FeedbackHeader,
	// by which a complaint or a late bounce finds it (pipeline/feedback);
	// nil: no header.
	Signer *tracking.Signer
	// Shaping, when set, limits connections and messages per destination
	// across processes and suspends a destination that asks for it
	// (shaping.go); nil: no limits.
	Shaping *Shaping
	// Renderer makes each email's copy from the body stored for it, at
	// every attempt: its recipient's own tracking. Nil: the stored body
	// goes out as it is (untracked, for an email rendered from a message).
	Renderer Renderer
	// Domains, when set, looks up the sending domain whose DKIM key signs
	// an email, through a cache that a change drops (pipeline.Service);
	// nil: Store.DomainByName at each attempt, a round trip.
	Domains Domains

	signers sync.Map // domain + selector → *dkim.Signer

	// unfinished are the entries whose attempt Redis failed mid-way: still
	// pending to this worker, which tries them again (reclaim) instead of
	// leaving them until ClaimIdle, since it is alive.
	unfinishedMu sync.Mutex
	unfinished   []store.Entry

	// shards are the mail shards the worker reads (store.ShardsInUse),
	// each with a reader of its own: a shard whose master is down stalls
	// its own mail only. A shard another process starts writing to is
	// found by maintain.
	shardsMu sync.Mutex
	shards   []store.Shard
	readers  sync.WaitGroup
}

// Renderer makes the copy of an email that goes out from the body the
// store holds for it (pipeline.Service implements it, with the tracking
// signer and the public URL): its recipient's open pixel and click links.
type Renderer interface {
	// Render returns e's copy of stored, and what the tracking rewrite
	// found: the destinations of its links, the parts it left unchanged.
	Render(e *store.Email, stored []byte) ([]byte, tracking.Result)
	// RenderCost is the memory Render holds for e with a stored body of
	// size bytes: the body and the copy.
	RenderCost(e *store.Email, size int64) int64
}

// Domains looks up an account's domain by name, nil when it has none.
type Domains interface {
	SigningDomain(ctx context.Context, accountID, name string) (*store.Domain, error)
}

// Reputation is the reputation guard as delivery uses it.
type Reputation interface {
	// Paused reports whether the account's sending is paused.
	Paused(ctx context.Context, accountID string) (bool, error)
	// Observe re-computes the account's rates after a bounce.
	Observe(ctx context.Context, accountID string) error
	// ReleaseResumed re-queues the held mail of accounts no longer paused.
	ReleaseResumed(ctx context.Context) error
}

// Run delivers until ctx is cancelled, then waits for attempts in flight.
func (w *Worker) Run(ctx context.Context) error {
	w.defaults()
	shards := w.Store.ShardsInUse(ctx)
	if err := store.RetryUntilDone(ctx, w.Logger, "delivery queue", func(ctx context.Context) error {
		// Shard 0's queue must answer; the others are readied by their
		// readers, so that one that is down holds up only itself.
		if err := w.Store.EnsureGroup(ctx, 0); err != nil {
			return err
		}
		return w.Store.Heartbeat(ctx, 0, w.Consumer, w.AliveTTL) // alive before it reads
	}); err != nil {
		return err
	}
	// A worker takes from the queue only what it has free attempts for:
	// an entry read ahead would wait behind slow deliveries here while
	// another process, or another of this one's attempts, could send it.
	// Each entry handed over holds one of free's tokens until its attempt
	// is done.
	free := make(chan struct{}, w.Concurrency)
	for range w.Concurrency {
		free <- struct{}{}
	}
	jobs := make(chan store.Entry)
	var wg sync.WaitGroup
	for range w.Concurrency {
		wg.Go(func() {
			for e := range jobs {
				w.process(e)
				free <- struct{}{}
			}
		})
	}
	var feeders sync.WaitGroup
	read := func(k store.Shard) { w.readers.Go(func() { w.read(ctx, k, free, jobs) }) }
	for _, k := range shards {
		w.addShard(k, read)
	}
	feeders.Go(func() { w.maintain(ctx, read) })
	feeders.Go(func() { w.reclaim(ctx, free, jobs) })
	feeders.Wait()
	w.readers.Wait()
	close(jobs)
	wg.Wait()
	w.Transport.CloseIdle()
	// What was read and not attempted is pending under this name: say
	// that it stopped, so that another worker takes it over now.
	retireCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	for _, k := range w.readShards() {
		if err := w.Store.Retire(retireCtx, k, w.Consumer); err != nil {
			w.Logger.Warn("could not retire the worker's liveness key", "shard", k, "err", err)
		}
	}
	return nil
}

// addShard starts reading shard k (with read) unless the worker does.
func (w *Worker) addShard(k store.Shard, read func(store.Shard)) {
	w.shardsMu.Lock()
	defer w.shardsMu.Unlock()
	if slices.Contains(w.shards, k) {
		return
	}
	w.shards = append(w.shards, k)
	read(k)
}

// readShards returns the shards the worker reads.
func (w *Worker) readShards() []store.Shard {
	w.shardsMu.Lock()
	defer w.shardsMu.Unlock()
	return slices.Clone(w.shards)
}

func (w *Worker) defaults() {
	if w.Now == nil {
		w.Now = time.Now
	}
	if w.Logger == nil {
		w.Logger = slog.Default()
	}
	if w.Metrics == nil {
		w.Metrics = NewMetrics(nil)
	}
	if w.Concurrency <= 0 {
		w.Concurrency = 1
	}
	if w.Consumer == "" {
		w.Consumer = store.ConsumerName()
	}
	if w.AliveTTL <= 0 {
		w.AliveTTL = 10 * time.Second
	}
	if w.Shaping != nil && w.Shaping.Now == nil {
		w.Shaping.Now = w.Now
	}
}

// take waits for one free attempt, then takes every other one free now,
// up to Concurrency, and returns how many it took (0: ctx is done).
func (w *Worker) take(ctx context.Context, free chan struct{}) int {
	select {
	case <-free:
	case <-ctx.Done():
		return 0
	}
	n := 1
	for n < w.Concurrency {
		select {
		case <-free:
			n++
		default:
			return n
		}
	}
	return n
}

// giveBack returns n free attempts that were taken and not used.
func giveBack(free chan struct{}, n int) {
	for range n {
		free <- struct{}{}
	}
}

// read feeds new entries of shard k's stream to the workers until ctx
// ends; it reads no more than there are free attempts. The only reader
// waits for new entries with all the free attempts it took. One of
// several looks without waiting; when its shard has nothing (or does not
// answer), it gives the attempts back and waits, holding none, for as
// many entries as attempts are free (one at least), then for an attempt
// for each: the attempts go to the shards that have mail, and a process
// reads ahead, per shard, no more than the attempts free when it began
// to wait, or one entry.
func (w *Worker) read(ctx context.Context, k store.Shard, free chan struct{}, jobs chan<- store.Entry) {
	if k != 0 {
		if store.RetryUntilDone(ctx, w.Logger, "delivery queue", func(ctx context.Context) error {
			if err := w.Store.EnsureGroup(ctx, k); err != nil {
				return err
			}
			return w.Store.Heartbeat(ctx, k, w.Consumer, w.AliveTTL) // alive there before it reads
		}) != nil {
			return
		}
	}
	readOnce := func(ctx context.Context, n int, block time.Duration) ([]store.Entry, error) {
		entries, err := w.Store.ReadNew(ctx, k, w.Consumer, n, block)
		if err != nil && strings.HasPrefix(err.Error(), "NOGROUP") {
			_ = w.Store.EnsureGroup(ctx, k) // the stream was lost (Redis without persistence restarted)
		}
		return entries, err
	}
	readNew := func(n int, block time.Duration) ([]store.Entry, error) {
		var entries []store.Entry
		err := store.RetryUntilDone(ctx, w.Logger, "delivery queue", func(ctx context.Context) error {
			var err error
			entries, err = readOnce(ctx, n, block)
			return err
		})
		return entries, err
	}
	for {
		n := w.take(ctx, free)
		if n == 0 {
			return
		}
		var entries []store.Entry
		var err error
		if len(w.readShards()) == 1 {
			entries, err = readNew(n, time.Second)
		} else if entries, err = readOnce(ctx, n, -1); err != nil || len(entries) == 0 {
			// Nothing there, or the shard is down: wait for entries
			// without holding the attempts, which the other shards may use.
			giveBack(free, n)
			if entries, err = readNew(max(1, len(free)), time.Second); err != nil {
				return
			}
			// Each entry is handed over as soon as it has an attempt:
			// readers that held some attempts while they waited for more
			// would wait for each other for ever.
			for _, e := range entries {
				select {
				case <-free:
				case <-ctx.Done():
					return // still pending: taken over once the worker retires
				}
				jobs <- e
			}
			continue
		}
		if err != nil {
			return
		}
		giveBack(free, n-len(entries))
		for _, e := range entries {
			jobs <- e // an entry read is always handed over: it is pending until acknowledged
		}
	}
}

// reclaim hands over again, once a second, this worker's unfinished
// entries, then takes over the entries a stopped worker left pending (its
// liveness key gone) and those pending past ClaimIdle (a stuck one), as
// many as there are free attempts: it waits for free ones in turn with
// read, so that old entries are not starved by new ones.
func (w *Worker) reclaim(ctx context.Context, free chan struct{}, jobs chan<- store.Entry) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		n := w.take(ctx, free)
		if n == 0 {
			return
		}
		claimed := w.takeUnfinished(n)
		for _, k := range w.readShards() {
			if len(claimed) >= n {
				break
			}
			orphaned, err := w.Store.ClaimOrphaned(ctx, k, w.Consumer, n-len(claimed))
			if err != nil && ctx.Err() == nil {
				w.Logger.Warn("claiming a stopped worker's entries failed", "shard", k, "err", err)
			}
			if len(orphaned) > 0 {
				w.Logger.Info("took over the entries of a stopped worker", "shard", k, "entries", len(orphaned))
			}
			claimed = append(claimed, orphaned...)
		}
		for _, k := range w.readShards() {
			if len(claimed) >= n {
				break
			}
			stuck, err := w.Store.Claim(ctx, k, w.Consumer, w.ClaimIdle, n-len(claimed))
			if err != nil && ctx.Err() == nil {
				w.Logger.Warn("claiming abandoned entries failed", "shard", k, "err", err)
			}
			claimed = append(claimed, stuck...)
		}
		giveBack(free, n-len(claimed))
		for _, e := range claimed {
			select {
			case jobs <- e:
			case <-ctx.Done():
				return // still pending: claimed again later
			}
		}
	}
}

// maintain renews the worker's liveness key, releases due retries to the
// stream, and the held mail of accounts no longer paused, once a second,
// in each shard it reads; and starts reading (with read) the shards in
// use that it does not. It never waits for a free attempt: a worker busy
// with slow deliveries still says it is alive.
func (w *Worker) maintain(ctx context.Context, read func(store.Shard)) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		w.Transport.CloseExpired(time.Now())
		if w.Shaping != nil && n%10 == 0 {
			w.reportDestinations(ctx)
		}
		for _, k := range w.Store.ShardsInUse(ctx) {
			w.addShard(k, read)
		}
		for _, k := range w.readShards() {
			if err := w.Store.Heartbeat(ctx, k, w.Consumer, w.AliveTTL); err != nil && ctx.Err() == nil {
				w.Logger.Warn("renewing the worker's liveness key failed", "shard", k, "err", err)
			}
			if _, err := w.Store.ReleaseDue(ctx, k, w.Now(), 1000); err != nil && ctx.Err() == nil {
				w.Logger.Warn("releasing retries failed", "shard", k, "err", err)
			}
		}
		if w.Reputation != nil {
			if err := w.Reputation.ReleaseResumed(ctx); err != nil && ctx.Err() == nil {
				w.Logger.Warn("releasing held mail failed", "err", err)
			}
		}
		if queued, retrying, err := w.Store.QueueDepth(ctx); err == nil {
			w.Metrics.queueDepth.WithLabelValues("queued").Set(float64(queued))
			w.Metrics.queueDepth.WithLabelValues("retrying").Set(float64(retrying))
		}
	}
}

// reportDestinations sets the gauge of destinations suspended or limited
// in the last hour, by provider group (bounded labels: never a host).
func (w *Worker) reportDestinations(ctx context.Context) {
	now := w.Now()
	dests, err := w.Store.ListDestinations(ctx, now, time.Hour, 1000)
	if err != nil {
		return
	}
	w.Metrics.destinations.Reset()
	w.Metrics.waiting.Reset()
	for _, d := range dests {
		w.Metrics.waiting.WithLabelValues(w.Shaping.Group(d.Name)).Add(float64(d.Waiting))
		state := "limited"
		if d.SuspendedUntil != nil {
			state = "suspended"
		}
		w.Metrics.destinations.WithLabelValues(state, w.Shaping.Group(d.Name)).Inc()
	}
}

// process makes one attempt. It runs on its own context so that a shutdown
// lets the attempt finish; if the process dies instead, the entry stays
// pending and another worker claims it.
func (w *Worker) process(entry store.Entry) {
	ctx, cancel := context.WithTimeout(context.Background(), w.Transport.timeout()+time.Minute)
	defer cancel()
	defer func() {
		// A message that crashes the worker would crash every worker that
		// claims it (a poison message): fail it instead.
		if p := recover(); p != nil {
			w.Logger.Error("delivery attempt panicked; marking the email failed", "email", entry.EmailID, "panic", p)
			// A zero CreatedAt is past MaxAge, so the temporary error is final: failed.
			_ = w.record(ctx, entry, &store.Email{ID: entry.EmailID}, 0,
				&Error{Temporary: true, Local: true, Message: fmt.Sprintf("internal error: %v", p)})
		}
	}()
	if err := w.attempt(ctx, entry); err != nil {
		// Redis failed mid-way (a failover, a restart): the entry stays
		// pending to this worker, which tries it again in a second; were
		// the process to die first, another would take it over.
		w.Logger.Warn("delivery attempt not recorded; trying again", "email", entry.EmailID, "err", err)
		w.unfinishedMu.Lock()
		w.unfinished = append(w.unfinished, entry)
		w.unfinishedMu.Unlock()
	}
}

// takeUnfinished takes up to n of the unfinished entries.
func (w *Worker) takeUnfinished(n int) []store.Entry {
	w.unfinishedMu.Lock()
	defer w.unfinishedMu.Unlock()
	k := min(n, len(w.unfinished))
	out := slices.Clone(w.unfinished[:k])
	w.unfinished = slices.Delete(w.unfinished, 0, k)
	return out
}

func (w *Worker) attempt(ctx context.Context, entry store.Entry) error {
	failpoint.Hit(failpoint.Attempt, entry.EmailID)
	e, bodyLen, err := w.Store.EmailWithBodyLen(ctx, entry.EmailID)
	if errors.Is(err, store.ErrNotFound) {
		return w.Store.Ack(ctx, entry)
	}
	if err != nil {
		return err
	}
	if final(e.Status) {
		// A re-read after a crash between recording and ack.
		return w.Store.Ack(ctx, entry)
	}
	if e.Mode != store.ModeLive {
		if e.Status == store.StatusScheduled {
			// A test-mode email whose time has come: "sent", never delivered.
			now := w.Now().UTC()
			if err := w.Store.FinishEmail(ctx, e.ID,
				map[string]any{store.FieldStatus: store.StatusSent, store.FieldSentAt: store.FormatTime(now)},
				&store.Event{Type: store.EventSent, Timestamp: now, AccountID: e.AccountID}); err != nil {
				return err
			}
		}
		return w.Store.Ack(ctx, entry)
	}
	if w.Reputation != nil {
		paused, err := w.Reputation.Paused(ctx, e.AccountID)
		if err != nil {
			return err
		}
		if paused {
			// Not an attempt: the email waits, whatever its age, until an
			// operator lifts the pause.
			return w.Store.Hold(ctx, entry, e.AccountID, w.Now())
		}
	}
	route, lease, held, err := w.admit(ctx, entry, e)
	if err != nil || held {
		return err // put back (not an attempt), or Redis failed
	}
	if lease != nil {
		// After the reply was acted on (backOff); a no-op once Deliver
		// kept a session holding it.
		defer lease.Release()
	}
	cost := bodyLen
	if w.Renderer != nil {
		cost = w.Renderer.RenderCost(e, bodyLen)
	}
	res, err := w.reserveBody(ctx, cost)
	if err != nil {
		return err
	}
	defer res.Release()
	body, err := w.Store.Body(ctx, e)
	if errors.Is(err, store.ErrNotFound) {
		// Only a Redis that lost data gets here; retrying cannot help.
		return w.record(ctx, entry, e, e.Attempts, &Error{Local: true, Message: "the message content is missing from storage"})
	}
	if err != nil {
		return err
	}
	var rendered tracking.Result
	if w.Renderer != nil {
		body, rendered = w.Renderer.Render(e, body)
	}
	now := w.Now().UTC()
	sent := map[string]any{store.FieldStatus: store.StatusSent, store.FieldAttempts: e.Attempts + 1}
	var events []*store.Event
	if e.SentAt == nil {
		// The first attempt: what its render found is recorded with it,
		// before the copy goes out (a click needs the links).
		sent[store.FieldSentAt] = store.FormatTime(now)
		events = append(events, &store.Event{Type: store.EventSent, Timestamp: now, AccountID: e.AccountID})
		for _, warning := range rendered.Warnings {
			events = append(events, &store.Event{Type: store.EventWarning, Timestamp: now, AccountID: e.AccountID,
				Data: map[string]string{"message": warning}})
		}
	}
	if e.Message != "" && e.TrackClicks && e.Links == nil {
		sent[store.FieldLinks] = store.LinksValue(rendered.Links)
	}
	if err := w.Store.UpdateEmailEvents(ctx, e.ID, sent, events); err != nil {
		return err
	}
	domain, err := w.signingDomain(ctx, e)
	if err != nil {
		return err
	}
	signature, err := w.sign(e.AccountID, domain, body)
	if err != nil {
		// Never send unsigned; retry like a temporary failure, so that
		// delivery.max_age bounds it if the key stays broken.
		w.Logger.Error("DKIM signing failed", "email", e.ID, "err", err)
		return w.record(ctx, entry, e, e.Attempts+1, &Error{Temporary: true, Local: true, Message: "DKIM signing failed", Err: err})
	}
	start := time.Now()
	got, derr := w.Transport.DeliverWithReply(ctx, Envelope{From: e.EnvelopeFrom, To: e.ToAddress, Prefix: w.prefix(e.ID, signature), Data: body,
		Route: route, Lease: lease})
	w.Metrics.attemptSeconds.Observe(time.Since(start).Seconds())
	if derr == nil {
		failpoint.Hit(failpoint.AfterRemoteAccepted, e.ID)
	}
	if lease != nil && derr != nil {
		derr = w.backOff(ctx, lease.Destination(), derr)
	}
	return w.recordPatiently(ctx, entry, e, e.Attempts+1, got, derr)
}

// final reports whether an email's status is one no attempt changes.
func final(status store.Status) bool {
	switch status {
	case store.StatusDelivered, store.StatusBounced, store.StatusFailed, store.StatusCancelled, store.StatusComplained:
		return true
	}
	return false
}

// recordPatience bounds how long an accepted delivery's outcome waits in
// memory for Redis to take it.
const recordPatience = 30 * time.Second

// recordPatiently records the outcome of an attempt. Until a delivery the
// destination accepted is recorded, a crash or a claim sends the message
// again; so while Redis refuses that write (OOM, MISCONF) or does not
// answer, it is tried again for up to recordPatience, not left pending to
// be sent twice once Redis is back. Each try reads the email first: a
// write that applied although its reply was lost is not made twice. Other
// outcomes are not worth the wait: sending again what was refused or
// deferred repeats no delivery.
func (w *Worker) recordPatiently(ctx context.Context, entry store.Entry, e *store.Email, attempts int, got Delivered, derr error) error {
	err := w.recordDelivery(ctx, entry, e, attempts, got, derr)
	if err == nil || derr != nil {
		return err
	}
	w.Logger.Warn("recording a delivery failed; trying again", "email", e.ID, "err", err)
	deadline := time.Now().Add(recordPatience)
	for wait := 100 * time.Millisecond; err != nil && time.Now().Before(deadline); wait = min(2*wait, 2*time.Second) {
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		var now *store.Email
		if now, err = w.Store.Email(ctx, e.ID); err != nil {
			continue
		}
		if final(now.Status) {
			err = w.Store.Ack(ctx, entry)
		} else {
			err = w.recordDelivery(ctx, entry, e, attempts, got, derr)
		}
	}
	return err
}

// admit looks up where e goes and takes a connection slot at that
// destination (Shaping). When the destination is suspended, over its rate
// or full, the email is put back on the retry schedule without an attempt
// (or failed, past delivery.max_age): held is true. Without Shaping,
// through a relay host (the operator's smarthost, which shapes its own
// traffic), or when the lookup fails (the attempt meets the failure again
// and records it), route and lease are nil.
func (w *Worker) admit(ctx context.Context, entry store.Entry, e *store.Email) (route *Route, lease *Lease, held bool, err error) {
	if w.Shaping == nil || w.Transport.RelayHost != "" {
		return nil, nil, false, nil
	}
	route, err = w.Transport.Route(ctx, e.ToAddress)
	if err != nil || len(route.Hosts) == 0 {
		return nil, nil, false, nil
	}
	dest := w.Shaping.Destination(route.Hosts[0])
	// This process's idle sessions there may be what fills it: one of
	// them gives its slot.
	lease, retryAt, reason, err := w.Shaping.Admit(ctx, dest, w.Transport.takeLease)
	if err != nil || lease != nil {
		return route, lease, false, err
	}
	now := w.Now().UTC()
	why := &Error{Temporary: true, Local: true, Enhanced: enhCongestion,
		Message: "held back: destination " + dest + " " + postponeText[reason]}
	if now.Sub(w.born(e)) >= w.MaxAge {
		return nil, nil, true, w.record(ctx, entry, e, e.Attempts, why)
	}
	w.Metrics.postponed.WithLabelValues(reason, w.Shaping.Group(dest)).Inc()
	if err := w.Store.Retry(ctx, entry, retryAt, map[string]any{store.FieldLastError: why.Error()}, nil); err != nil {
		return nil, nil, true, err
	}
	w.noteDeferred(ctx, dest, e.ID, retryAt)
	return nil, nil, true, nil
}

// noteDeferred counts e in dest's deferred mail until due (its queue depth
// in GET /admin/v1/destinations and /metrics). The email is already in the
// retry schedule: a failure here loses a count, not the email.
func (w *Worker) noteDeferred(ctx context.Context, dest, emailID string, due time.Time) {
	if err := w.Store.Deferred(ctx, dest, emailID, due, w.Now()); err != nil {
		w.Logger.Warn("counting a destination's deferred mail failed", "destination", dest, "err", err)
	}
}

var postponeText = map[string]string{
	"suspended":   "suspended after a back-off reply",
	"rate":        "over its message rate",
	"connections": "at its connection limit",
}

// backOff suspends dest when derr is a provider's back-off reply, and then
// returns derr with the end of the suspension as its retry time; and with
// dest, for its count of deferred mail.
func (w *Worker) backOff(ctx context.Context, dest string, derr error) error {
	until, err := w.Shaping.BackOff(ctx, dest, derr)
	if err != nil {
		w.Logger.Warn("suspending a destination failed", "destination", dest, "err", err)
	}
	var de *Error
	if !errors.As(derr, &de) {
		return derr
	}
	c := *de
	c.Destination = dest
	if !until.IsZero() {
		w.Metrics.suspensions.WithLabelValues(w.Shaping.Group(dest)).Inc()
		c.RetryAt = w.Shaping.spread(w.Now(), until)
	}
	return &c
}

// born is when an email's age starts: its due time when scheduled, else
// its submission.
func (w *Worker) born(e *store.Email) time.Time {
	if e.ScheduledAt != nil {
		return *e.ScheduledAt
	}
	return e.CreatedAt
}

// prefix is what goes before an email's stored body: its feedback id
// header, then its DKIM signature. The id is added here, not stored: it
// is not signed (no DKIM h= names it), and it is what is known of the
// email when it goes out.
func (w *Worker) prefix(emailID string, signature []byte) []byte {
	if w.Signer == nil {
		return signature
	}
	p := w.Signer.AppendFeedbackField(make([]byte, 0, 80+len(signature)), emailID)
	return append(p, signature...)
}

// smallBody is the size up to which a body is read back without reserving
// memory for it.
const smallBody = 64 << 10

// reserveBody reserves the memory of a body of n bytes from the budget,
// waiting for it until ctx ends (then the entry stays pending and is
// claimed again later). It is nil for a small body or without a budget.
// Once signed, the body is sent as read (Envelope.Prefix): its size is all
// that delivery holds of it.
func (w *Worker) reserveBody(ctx context.Context, n int64) (*membudget.Reservation, error) {
	if w.Budget == nil || n <= smallBody {
		return nil, nil
	}
	res, err := w.Budget.Acquire(ctx, n)
	if err != nil {
		return nil, fmt.Errorf("waiting for memory to read a %d-byte body: %w", n, err)
	}
	return res, nil
}

// record stores the outcome of an attempt that did not reach the
// destination, then acknowledges the entry.
func (w *Worker) record(ctx context.Context, entry store.Entry, e *store.Email, attempts int, derr error) error {
	return w.recordDelivery(ctx, entry, e, attempts, Delivered{}, derr)
}

// maxEventReply bounds a remote reply kept in an event's data: the
// events stream and webhook payloads hold many of them.
const maxEventReply = 200

// eventReply is a remote's reply as an event carries it: on one line (no
// CR or LF) and at most maxEventReply bytes of valid UTF-8.
func eventReply(s string) string {
	s = shortReply(s)
	if len(s) > maxEventReply {
		s = strings.ToValidUTF8(s[:maxEventReply], "")
	}
	return s
}

// attemptData is the data of an attempt's event: the remote host ("mx")
// and its reply ("response"), when there were some, and for a failure its
// reason.
func attemptData(host, reply, reason string) map[string]string {
	d := make(map[string]string, 3)
	if host != "" {
		d["mx"] = eventReply(host)
	}
	if reply != "" {
		d["response"] = eventReply(reply)
	}
	if reason != "" {
		d["reason"] = reason
	}
	if len(d) == 0 {
		return nil
	}
	return d
}

// recordDelivery stores the outcome of an attempt, got being what the
// destination said when derr is nil, then acknowledges the entry.
func (w *Worker) recordDelivery(ctx context.Context, entry store.Entry, e *store.Email, attempts int, got Delivered, derr error) error {
	now := w.Now().UTC()
	stamp := store.FormatTime(now)
	if derr == nil {
		w.Metrics.attempts.WithLabelValues("delivered").Inc()
		return w.Store.FinishDelivery(ctx, entry, e,
			map[string]any{store.FieldStatus: store.StatusDelivered, store.FieldDeliveredAt: stamp, store.FieldLastError: ""},
			&store.Event{Type: store.EventDelivered, Timestamp: now, AccountID: e.AccountID,
				Data: attemptData(got.Host, got.Reply, "")})
	}
	var de *Error
	if !errors.As(derr, &de) {
		de = &Error{Temporary: true, Message: derr.Error(), Err: derr}
	}
	detail := attemptData(de.Host, de.Reply(), de.Error())
	// A scheduled email's age counts from its due time, not from its submission.
	if de.Temporary && now.Sub(w.born(e)) < w.MaxAge {
		w.Metrics.attempts.WithLabelValues("deferred").Inc()
		due := now.Add(w.backoff(attempts))
		if de.RetryAt.After(due) {
			due = de.RetryAt // the destination is suspended until then
		}
		w.Logger.Info("delivery deferred", "email", e.ID, "attempt", attempts, "retry_at", due, "err", de)
		if err := w.Store.Retry(ctx, entry, due,
			map[string]any{store.FieldLastError: de.Error()},
			&store.Event{Type: store.EventDeferred, Timestamp: now, AccountID: e.AccountID, Data: detail}); err != nil {
			return err
		}
		if de.Destination != "" {
			w.noteDeferred(ctx, de.Destination, e.ID, due)
		}
		return nil
	}
	status, field, event := store.StatusBounced, store.FieldBouncedAt, store.EventBounced
	if de.Temporary || de.Local {
		status, field, event = store.StatusFailed, store.FieldFailedAt, store.EventFailed
	}
	w.Metrics.attempts.WithLabelValues(string(event)).Inc()
	w.Logger.Info("delivery "+string(event), "email", e.ID, "err", de)
	// The address is suppressed before the email reads "bounced", so that
	// whoever sees the bounce and sends again is refused.
	if status == store.StatusBounced && hardBounce(de) {
		if err := w.Store.Suppress(ctx, e.AccountID, e.ToAddress, "hard_bounce"); err != nil {
			return err
		}
		if e.Send != nil && e.Send.ContactID != "" {
			// contacts.Bounced: the contact's status says why its sends stop.
			if err := w.Store.SetContactStatus(ctx, e.AccountID, e.Send.ContactID, "bounced", now); err != nil {
				return err
			}
		}
	}
	if err := w.Store.FinishDelivery(ctx, entry, e,
		map[string]any{store.FieldStatus: status, field: stamp, store.FieldLastError: de.Error()},
		&store.Event{Type: event, Timestamp: now, AccountID: e.AccountID, Data: detail}); err != nil {
		return err
	}
	if status == store.StatusBounced && w.Reputation != nil {
		if err := w.Reputation.Observe(ctx, e.AccountID); err != nil {
			w.Logger.Warn("checking the account's bounce rate failed", "account", e.AccountID, "err", err)
		}
	}
	return nil
}

// hardBounce reports whether a permanent failure says the recipient's
// address is bad, so that further mail to it is suppressed.
func hardBounce(e *Error) bool { return !e.Temporary && AddressRejected(e.Enhanced) }

// AddressRejected reports whether an enhanced status code (RFC 3463) is a
// permanent failure that says the recipient's address is bad: 5.1.x, but
// not 5.1.7 and 5.1.8, which are about the sender. A late bounce
// (pipeline/feedback) suppresses by the same rule.
func AddressRejected(code [3]int) bool {
	return code[0] == 5 && code[1] == 1 && code[2] != 7 && code[2] != 8
}

// backoff returns the delay before attempt attempts+1: the retry schedule
// (internal/retry) from RetryInitial up to RetryMax.
func (w *Worker) backoff(attempts int) time.Duration {
	return retry.Schedule{Initial: w.RetryInitial, Max: w.RetryMax}.Delay(attempts)
}

// signingDomain is the account's domain of e's From address, whose key
// signs it; nil when it is not one of the account's domains (test mode):
// then e goes unsigned.
func (w *Worker) signingDomain(ctx context.Context, e *store.Email) (*store.Domain, error) {
	name := strings.ToLower(e.FromAddress[strings.LastIndexByte(e.FromAddress, '@')+1:])
	if w.Domains != nil {
		return w.Domains.SigningDomain(ctx, e.AccountID, name)
	}
	d, err := w.Store.DomainByName(ctx, e.AccountID, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return d, err
}

// sign returns the DKIM-Signature field of d, the account's record of the
// From domain, to send before body (d nil: none, the message goes unsigned).
func (w *Worker) sign(accountID string, d *store.Domain, body []byte) ([]byte, error) {
	if d == nil {
		return nil, nil
	}
	cacheKey := accountID + "/" + d.Name + "/" + d.Selector
	var signer *dkim.Signer
	var err error
	if v, ok := w.signers.Load(cacheKey); ok && v.(*signerEntry).pem == d.PrivateKeyPEM {
		signer = v.(*signerEntry).signer
	} else {
		signer, err = dkim.NewSigner(d.Name, d.Selector, d.PrivateKeyPEM)
		if err != nil {
			return nil, fmt.Errorf("dkim key of %s: %w", d.Name, err)
		}
		w.signers.Store(cacheKey, &signerEntry{pem: d.PrivateKeyPEM, signer: signer})
	}
	header, err := signer.Sign(body)
	if err != nil {
		return nil, err
	}
	return []byte(header), nil
}

type signerEntry struct {
	pem    string
	signer *dkim.Signer
}
