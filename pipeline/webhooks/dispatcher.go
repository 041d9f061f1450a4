package webhooks

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pigeonpost/pigeonpost/internal/retry"

	"github.com/pigeonpost/pigeonpost/internal/safehttp"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// Dispatcher turns recorded events into webhook deliveries and delivers
// them. It has two halves:
//
//   - fan-out reads the global event stream through the consumer group
//     "webhooks" and, for each event the account's endpoints subscribe to,
//     queues one delivery per endpoint (pp:{wh}:delivery:<id>, scheduled in
//     pp:{wh}:due) before acknowledging the entry. Entries a stopped
//     dispatcher read but did not acknowledge are claimed as soon as its
//     liveness key is gone (store.Heartbeat), those of a stuck one after
//     ClaimIdle (XAUTOCLAIM); a marker per entry keeps a claimed entry
//     from being queued twice.
//   - delivery leases due deliveries (a Lua script moves their schedule
//     entry past the attempt, so no two dispatchers take one, and a dead
//     dispatcher's lease runs out), POSTs them, and either removes them
//     (2xx), reschedules them with exponential backoff, or, past MaxAge,
//     moves them to the account's list of failed deliveries.
//
// Which events fire: every event type an endpoint subscribes to, except
// bot-filtered opens and clicks, and opens and clicks other than the first
// of an email unless the account set webhookOnEveryOpen/webhookOnEveryClick.
type Dispatcher struct {
	Store        *store.Store
	Client       *safehttp.Client
	Workers      int           // concurrent attempts; at least 1
	Timeout      time.Duration // one attempt; the lease is this plus a margin
	RetryInitial time.Duration
	RetryMax     time.Duration
	MaxAge       time.Duration // after this long a delivery is given up
	ClaimIdle    time.Duration // events a stuck dispatcher left are taken over after this
	// AliveTTL is how long the dispatcher's liveness key outlives its last
	// renewal; the events of a dispatcher whose key is gone (killed) are
	// taken over at once. Default: 10 s.
	AliveTTL  time.Duration
	Consumer  string // name in the consumer group; empty: host-pid-random
	UserAgent string
	// KeepAnswers keeps the start of each answer's body (AnswerSnippet
	// bytes) in the endpoint's list of recent attempts, for its owner to
	// read. Set it only when the Client refuses private, loopback and
	// link-local addresses: then every answer kept is a public server's,
	// and a webhook cannot read the inside of the network.
	KeepAnswers bool
	Now         func() time.Time
	Logger      *slog.Logger
	Metrics     *Metrics

	wake chan struct{}
}

// Run dispatches until ctx is cancelled, then waits for attempts in flight
// (each bounded by Timeout).
func (d *Dispatcher) Run(ctx context.Context) error {
	d.defaults()
	if err := store.RetryUntilDone(ctx, d.Logger, "webhook queue", func(ctx context.Context) error {
		if err := d.Store.EnsureWebhookGroup(ctx, 0); err != nil {
			return err
		}
		return d.Store.Heartbeat(ctx, 0, d.Consumer, d.AliveTTL) // alive before it reads
	}); err != nil {
		return nil // cancelled
	}
	var wg sync.WaitGroup
	var shards []store.Shard // read by a fan-out loop each
	wg.Go(func() {
		var loops sync.WaitGroup
		defer loops.Wait()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			// The shards in use, and those another process starts to
			// write to, each have their event stream.
			for _, k := range d.Store.ShardsInUse(ctx) {
				if !slices.Contains(shards, k) {
					shards = append(shards, k)
					loops.Go(func() { d.fanOutLoop(ctx, k) })
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
	d.deliverLoop(ctx)
	wg.Wait()
	// Events read and not fanned out are pending under this name: say that
	// it stopped, so that another dispatcher takes them over now.
	retireCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	for _, k := range shards {
		if err := d.Store.Retire(retireCtx, k, d.Consumer); err != nil {
			d.Logger.Warn("could not retire the dispatcher's liveness key", "shard", k, "err", err)
		}
	}
	return nil
}

func (d *Dispatcher) defaults() {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Metrics == nil {
		d.Metrics = NewMetrics(nil)
	}
	if d.Workers <= 0 {
		d.Workers = 1
	}
	if d.Timeout <= 0 {
		d.Timeout = 10 * time.Second
	}
	if d.RetryInitial <= 0 {
		d.RetryInitial = 30 * time.Second
	}
	if d.RetryMax < d.RetryInitial {
		d.RetryMax = d.RetryInitial
	}
	if d.MaxAge <= 0 {
		d.MaxAge = 72 * time.Hour
	}
	if d.ClaimIdle <= 0 {
		d.ClaimIdle = time.Minute
	}
	if d.AliveTTL <= 0 {
		d.AliveTTL = 10 * time.Second
	}
	if d.UserAgent == "" {
		d.UserAgent = "pigeonpost-webhooks/1"
	}
	if d.Consumer == "" {
		d.Consumer = store.ConsumerName()
	}
	d.wake = make(chan struct{}, 1)
}

// ---- fan-out ----

// fanOutLoop fans out the events of shard k's stream until ctx ends.
func (d *Dispatcher) fanOutLoop(ctx context.Context, k store.Shard) {
	if k != 0 && store.RetryUntilDone(ctx, d.Logger, "webhook queue", func(ctx context.Context) error {
		if err := d.Store.EnsureWebhookGroup(ctx, k); err != nil {
			return err
		}
		return d.Store.Heartbeat(ctx, k, d.Consumer, d.AliveTTL) // alive there before it reads
	}) != nil {
		return
	}
	// The events handled and not yet acknowledged. One XACK for a batch,
	// sent with the next read: every event is a write, and under a flood
	// of tracking hits one round trip each was most of Redis's work. A
	// crash before it only makes the events be fanned out again, which
	// queues nothing twice (deliveryID).
	var handled []string
	defer func() {
		if len(handled) > 0 {
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			defer cancel()
			if err := d.Store.AckEvents(actx, k, handled...); err != nil {
				d.Logger.Warn("acknowledging webhook events failed; they will be claimed again", "events", len(handled), "err", err)
			}
		}
	}()
	lastClaim, lastBeat := time.Now(), time.Now()
	for ctx.Err() == nil {
		var events []store.StreamEvent
		err := store.RetryUntilDone(ctx, d.Logger, "webhook queue", func(ctx context.Context) error {
			var err error
			events, err = d.Store.ReadEvents(ctx, k, d.Consumer, fanOutBatch, time.Second, handled...)
			if err != nil && strings.HasPrefix(err.Error(), "NOGROUP") {
				_ = d.Store.EnsureWebhookGroup(ctx, k) // the stream was lost (Redis without persistence restarted)
			}
			return err
		})
		if err != nil {
			return
		}
		handled = handled[:0]
		if time.Since(lastBeat) >= time.Second {
			lastBeat = time.Now()
			if err := d.Store.Heartbeat(ctx, k, d.Consumer, d.AliveTTL); err != nil && ctx.Err() == nil {
				d.Logger.Warn("renewing the dispatcher's liveness key failed", "err", err)
			}
			orphaned, err := d.Store.ClaimOrphanedEvents(ctx, k, d.Consumer, 100)
			if err != nil && ctx.Err() == nil {
				d.Logger.Warn("claiming a stopped dispatcher's webhook events failed", "err", err)
			}
			events = append(events, orphaned...)
		}
		if time.Since(lastClaim) >= d.ClaimIdle/2 {
			lastClaim = time.Now()
			claimed, err := d.Store.ClaimEvents(ctx, k, d.Consumer, d.ClaimIdle, 100)
			if err != nil && ctx.Err() == nil {
				d.Logger.Warn("claiming abandoned webhook events failed", "err", err)
			}
			events = append(events, claimed...)
		}
		lk := &accountLookups{settings: map[string]store.TrackingSettings{}, endpoints: map[string][]*store.Webhook{}}
		for _, ev := range events {
			if d.fanOutOne(ctx, lk, ev) {
				handled = append(handled, ev.StreamID)
			}
		}
		if len(events) > 0 && len(events) < fanOutBatch {
			// Let the next events gather: read one at a time, each pays its
			// read, its accounts' lookups and its XACK, which with the
			// events spread over shards and processes was a third of
			// Redis's work per message (make scale).
			select {
			case <-ctx.Done():
			case <-time.After(fanOutLinger):
			}
		}
	}
}

// fanOutBatch is how many events a fan-out loop reads at once; after a
// smaller batch it waits fanOutLinger before it reads again, which delays
// a webhook that much at most.
const (
	fanOutBatch  = 100
	fanOutLinger = 50 * time.Millisecond
)

// fanOutOne queues the deliveries of one event and reports whether it is
// handled, to be acknowledged. On a Redis failure it is not: the entry
// stays pending and is claimed again later.
func (d *Dispatcher) fanOutOne(ctx context.Context, lk *accountLookups, se store.StreamEvent) (handled bool) {
	defer func() {
		if p := recover(); p != nil {
			d.Logger.Error("webhook fan-out panicked; event skipped", "entry", se.ID(), "panic", p)
			handled = true
		}
	}()
	queued, err := d.queue(ctx, lk, se)
	if err != nil {
		if ctx.Err() == nil {
			d.Logger.Warn("queueing webhooks failed; the event will be claimed again", "entry", se.ID(), "err", err)
		}
		return false
	}
	if queued > 0 {
		d.Metrics.events.WithLabelValues("queued").Inc()
		select {
		case d.wake <- struct{}{}:
		default:
		}
	} else {
		d.Metrics.events.WithLabelValues("skipped").Inc()
	}
	return true
}

// audience is who the fan-out sends an event to, among the endpoints
// that subscribe to it.
type audience int

const (
	nobody   audience = iota
	everyone          // every subscribed endpoint
	machines          // those that asked for machines' hits (machineEvents)
)

func (a audience) reaches(ep *store.Webhook) bool {
	return a == everyone || a == machines && ep.MachineEvents
}

// audienceOf decides the audience of ev: a machine's hits go, each of
// them, to the endpoints that ask for them; a person's first open and
// click go to every endpoint, the later ones as the account's settings
// say (read through settings only then). The fan-out (queue) and a
// replay decide alike with it.
func audienceOf(ev store.Event, settings func() (store.TrackingSettings, error)) (audience, error) {
	if ev.Type == "" || ev.AccountID == "" || (ev.EmailID == "" && !accountEvent(ev.Type)) {
		return nobody, nil
	}
	if store.MachineEvent(&ev) {
		return machines, nil
	}
	hit := ev.Type == store.EventOpened || ev.Type == store.EventClicked
	if !hit || ev.Data[store.DataFirst] == "true" || ev.Data[store.DataFirstPerson] == "true" {
		return everyone, nil
	}
	st, err := settings()
	if err != nil {
		return nobody, err
	}
	if (ev.Type == store.EventOpened && st.WebhookOnEveryOpen) || (ev.Type == store.EventClicked && st.WebhookOnEveryClick) {
		return everyone, nil
	}
	return nobody, nil
}

// queue builds and queues the deliveries of one event; it returns how many.
func (d *Dispatcher) queue(ctx context.Context, lk *accountLookups, se store.StreamEvent) (int, error) {
	ev := se.Event
	aud, err := audienceOf(ev, func() (store.TrackingSettings, error) {
		return memoized(lk.settings, ev.AccountID, func() (store.TrackingSettings, error) {
			return d.Store.TrackingSettings(ctx, ev.AccountID)
		})
	})
	if err != nil || aud == nobody {
		return 0, err
	}
	name := EventName(ev.Type)
	endpoints, err := memoized(lk.endpoints, ev.AccountID, func() ([]*store.Webhook, error) {
		return d.Store.Webhooks(ctx, ev.AccountID)
	})
	if err != nil {
		return 0, err
	}
	var targets []*store.Webhook
	for _, ep := range endpoints {
		if ep.Subscribed(name) && aud.reaches(ep) {
			targets = append(targets, ep)
		}
	}
	if len(targets) == 0 {
		return 0, nil
	}
	to := ""
	if ev.EmailID != "" {
		if e, err := d.Store.Email(ctx, ev.EmailID); err == nil {
			to = e.ToAddress
		} else if !errors.Is(err, store.ErrNotFound) {
			return 0, err
		}
	}
	body := Body(ev, to)
	now := d.Now().UTC()
	ds := make([]*store.WebhookDelivery, 0, len(targets))
	for _, ep := range targets {
		ds = append(ds, &store.WebhookDelivery{
			ID: deliveryID(se.ID(), ep.ID), AccountID: ev.AccountID, EndpointID: ep.ID,
			Event: name, Body: body, CreatedAt: now,
		})
	}
	if _, err := d.Store.QueueWebhookDeliveries(ctx, se.ID(), ds, now); err != nil {
		return 0, err
	}
	return len(ds), nil
}

// accountLookups keeps, for one batch of events, what the fan-out read of
// each account: a batch of opens of one account reads its settings and
// endpoints once. A change made meanwhile applies from the next batch.
type accountLookups struct {
	settings  map[string]store.TrackingSettings
	endpoints map[string][]*store.Webhook
}

// memoized returns m[key], loading and keeping it on the first call.
func memoized[V any](m map[string]V, key string, load func() (V, error)) (V, error) {
	if v, ok := m[key]; ok {
		return v, nil
	}
	v, err := load()
	if err == nil {
		m[key] = v
	}
	return v, err
}

// deliveryID is the same for an event and an endpoint whoever computes it,
// so that a delivery queued twice is one delivery.
func deliveryID(streamID, endpointID string) string {
	sum := sha256.Sum256([]byte(streamID + "\x00" + endpointID))
	return "whmsg_" + hex.EncodeToString(sum[:12])
}

// ---- delivery ----

// leaseMargin is added to Timeout for the lease of a delivery in progress:
// time to record the attempt after the POST. It is also how soon after
// Timeout a dead dispatcher's delivery is tried again by another, so it is
// short: a delivery sent twice carries one webhook id, which receivers
// deduplicate by, while one held for long looks lost.
const leaseMargin = 5 * time.Second

func (d *Dispatcher) deliverLoop(ctx context.Context) {
	sem := make(chan struct{}, d.Workers)
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	lastDepth := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-d.wake:
		}
		free := d.Workers - len(sem)
		if free == 0 {
			continue
		}
		ids, err := d.Store.LeaseDueWebhooks(ctx, d.Now(), d.Timeout+leaseMargin, free)
		if err != nil {
			if ctx.Err() == nil {
				d.Logger.Warn("reading due webhooks failed", "err", err)
			}
			continue
		}
		for _, id := range ids {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				d.attempt(id)
			}()
		}
		if time.Since(lastDepth) > 5*time.Second {
			lastDepth = time.Now()
			if n, err := d.Store.WebhookQueueDepth(ctx); err == nil {
				d.Metrics.queueDepth.Set(float64(n))
			}
		}
		if len(ids) == free {
			select { // there may be more due: look again at once
			case d.wake <- struct{}{}:
			default:
			}
		}
	}
}

// attempt makes one attempt at delivery id. It runs on its own context so
// that a shutdown lets it finish; if the process dies, the lease runs out
// and another dispatcher tries again.
func (d *Dispatcher) attempt(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), d.Timeout+leaseMargin)
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			d.Logger.Error("webhook attempt panicked", "delivery", id, "panic", p)
		}
	}()
	del, err := d.Store.WebhookDelivery(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		_ = d.Store.FinishWebhookDelivery(ctx, id) // a stale schedule entry
		return
	}
	if err != nil {
		d.Logger.Warn("reading a webhook delivery failed", "delivery", id, "err", err)
		return
	}
	ep, err := d.Store.Webhook(ctx, del.AccountID, del.EndpointID)
	if errors.Is(err, store.ErrNotFound) {
		d.Metrics.attempts.WithLabelValues("dropped").Inc()
		_ = d.Store.FinishWebhookDelivery(ctx, id) // the endpoint was deleted
		return
	}
	if err != nil {
		d.Logger.Warn("reading a webhook endpoint failed", "delivery", id, "err", err)
		return
	}

	start := time.Now()
	code, answer, perr := d.post(ctx, ep, del)
	took := time.Since(start)
	d.Metrics.attemptSeconds.Observe(took.Seconds())
	now := d.Now().UTC()
	del.Attempts++
	rec := store.WebhookAttempt{DeliveryID: id, EndpointID: ep.ID, Event: del.Event, Attempt: del.Attempts, At: now,
		HTTPStatus: code, LatencyMs: took.Milliseconds(), Body: answer}
	switch {
	case perr == nil:
		d.Metrics.attempts.WithLabelValues("delivered").Inc()
		rec.Outcome, rec.Response = store.AttemptDelivered, statusLine(code)
		err = d.Store.FinishWebhookDelivery(ctx, id)
	case now.Sub(del.CreatedAt) >= d.MaxAge:
		d.Metrics.attempts.WithLabelValues("failed").Inc()
		del.LastError = perr.Error()
		rec.Outcome, rec.Response = store.AttemptFailed, attemptResponse(code, perr)
		d.Logger.Warn("webhook delivery given up", "delivery", id, "endpoint", ep.ID, "attempts", del.Attempts, "err", perr)
		err = d.Store.FailWebhookDelivery(ctx, del, now)
	default:
		d.Metrics.attempts.WithLabelValues("retried").Inc()
		del.LastError = perr.Error()
		rec.Outcome, rec.Response = store.AttemptRetrying, attemptResponse(code, perr)
		due := now.Add(d.backoff(del.Attempts))
		d.Logger.Info("webhook delivery deferred", "delivery", id, "endpoint", ep.ID, "attempt", del.Attempts, "retry_at", due, "err", perr)
		err = d.Store.RetryWebhookDelivery(ctx, del, due)
	}
	if err != nil {
		d.Logger.Warn("recording a webhook attempt failed; it will be retried when its lease ends", "delivery", id, "err", err)
	}
	// The endpoint's list of recent attempts (the dashboard's), after
	// the delivery's own record: losing an entry loses no delivery.
	if err := d.Store.RecordWebhookAttempt(ctx, del.AccountID, rec); err != nil {
		d.Logger.Warn("adding a webhook attempt to the endpoint's recent list failed", "delivery", id, "err", err)
	}
}

// statusLine is an answer's status as the list of recent attempts shows
// it: "HTTP 200 OK".
func statusLine(code int) string {
	return strings.TrimSpace(fmt.Sprintf("HTTP %d %s", code, http.StatusText(code)))
}

// attemptResponse is what the list of recent attempts says of a failed
// one: the status line of the answer, or the error when there was none.
func attemptResponse(code int, err error) string {
	if code != 0 {
		return statusLine(code)
	}
	return err.Error()
}

// maxErrorBody bounds how much of a response is read: enough to reuse the
// connection, never a full download of whatever the URL serves.
const maxErrorBody = 1024

// AnswerSnippet is how much of an answer's body KeepAnswers keeps.
const AnswerSnippet = 256

// post sends one signed attempt and returns the answer's status (0 for
// none) and, with KeepAnswers, the start of its body as text. Only a 2xx
// answer is a success; redirects are followed only to public addresses
// (safehttp) and must end in a 2xx.
func (d *Dispatcher) post(ctx context.Context, ep *store.Webhook, del *store.WebhookDelivery) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, d.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(del.Body))
	if err != nil {
		return 0, "", fmt.Errorf("bad endpoint URL: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", d.UserAgent)
	req.Header.Set(IDHeader, del.ID)
	req.Header.Set(EventHeader, del.Event)
	req.Header.Set(SignatureHeader, Sign(ep.Secret, d.Now(), del.Body))
	resp, err := d.Client.Do(req)
	switch {
	case errors.Is(err, safehttp.ErrForbiddenAddress):
		// The host is looked up again at every attempt and the address
		// checked as it is dialled: a name that moved to the inside
		// since registration is refused here, not connected to.
		return 0, "", fmt.Errorf("refused, not connected: the endpoint's host is now on a private, loopback or link-local address (%w)", err)
	case errors.Is(err, safehttp.ErrRefusedURL), errors.Is(err, safehttp.ErrTooManyRedirects):
		return 0, "", fmt.Errorf("refused: the endpoint URL, or one it redirected to, is not allowed (%w)", err)
	case err != nil:
		return 0, "", err
	}
	defer resp.Body.Close()
	// Never more than maxErrorBody of the answer is read, and what the
	// delivery records (lastError) is the status alone. Only KeepAnswers
	// keeps the start of it, for the endpoint's recent attempts.
	head, _ := io.ReadAll(io.LimitReader(resp.Body, AnswerSnippet))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody-int64(len(head))))
	var answer string
	if d.KeepAnswers {
		answer = Snippet(head)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, answer, fmt.Errorf("endpoint answered HTTP %d", resp.StatusCode)
	}
	return resp.StatusCode, answer, nil
}

// Snippet is b as one line of text to show: invalid UTF-8 and control
// characters (line ends included) become U+FFFD and spaces, and a rune cut
// at the end of b is dropped.
func Snippet(b []byte) string {
	var sb strings.Builder
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		switch {
		case r == utf8.RuneError && n == 1 && !utf8.FullRune(b):
			return sb.String() // cut by the limit
		case unicode.IsControl(r):
			r = ' '
		}
		sb.WriteRune(r)
		b = b[n:]
	}
	return sb.String()
}

// backoff returns the delay before attempt attempts+1: the retry schedule
// (internal/retry) from RetryInitial up to RetryMax.
func (d *Dispatcher) backoff(attempts int) time.Duration {
	return retry.Schedule{Initial: d.RetryInitial, Max: d.RetryMax}.Delay(attempts)
}
