package webhooks

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"time"

	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// Replayer sends an account's stored events to one of its endpoints again
// (POST /v1/webhooks/{id}/replay), or one delivery again (POST
// /v1/webhooks/deliveries/{id}/redeliver): for an endpoint that was down
// longer than webhooks.max_age, or that lost what it received.
//
// Each event goes out under its original delivery id (deliveryID of its
// stream id and the endpoint), so that a receiver that got it before
// drops it as a duplicate, with the body the fan-out builds (Body), signed
// afresh at each attempt, through the delivery queue (retries and all).
//
// A replay reads the account's event stream (the events GET /v1/events
// lists), filtered as the fan-out filters (fires), and runs in the
// request: 10,000 events, the most one replay queues, take about 0.4 s
// against Redis with appendfsync always (BenchmarkReplay). Its deliveries
// join a set of the
// endpoint's (store.WebhookReplayIDsKey): no other replay of the endpoint
// starts until they are all delivered or given up, so replays cannot grow
// the queue past one replay per endpoint.
type Replayer struct {
	Store *store.Store
	// MaxAge is webhooks.max_age: how long a replay's deliveries may stay
	// queued (and hold the next replay of their endpoint back).
	MaxAge time.Duration
	// Retention is retention.records (0: forever): events older than that
	// are not replayed, as their emails' records (the recipient of a
	// webhook) have expired.
	Retention time.Duration
	Now       func() time.Time
	Logger    *slog.Logger

	maxEvents int // tests: 0 is MaxReplayEvents
}

// Bounds of a replay.
const (
	// MaxReplayWindow is the longest period one replay covers.
	MaxReplayWindow = 7 * 24 * time.Hour
	// MaxReplayEvents is the most events one replay queues (and the rest
	// of the millisecond of the last one); a longer window is cut, and the
	// answer says where to continue from.
	MaxReplayEvents = 10_000

	replayScanBatch  = 1000            // entries read from the stream per round trip
	replayQueueBatch = 500             // deliveries queued per script call
	replayLockTTL    = 2 * time.Minute // the lock of a replay that died queueing frees itself
	replayTimeout    = time.Minute     // one replay's queueing
)

// ReplayInput is the body of POST /v1/webhooks/{id}/replay.
type ReplayInput struct {
	Since  string   // RFC 3339, required
	Until  string   // RFC 3339; "" for now
	Events []string // webhook event names; none: those the endpoint subscribes to
}

// ReplayResult is what a replay did.
type ReplayResult struct {
	ID         string // whrp_…
	EndpointID string
	// Since and Until are the window replayed, to the millisecond: Until
	// is where a replay that was cut (Truncated) stopped, the Since of
	// the next one.
	Since, Until time.Time
	Queued       int // deliveries queued
	// Pending is how many events of the window have their first delivery
	// still queued, being retried: left alone, they go out on their own
	// schedule, under the same id.
	Pending int
	// Unavailable is how many were recorded before pigeonpost kept the id
	// the fan-out knew them by: their original delivery id is unknown, so
	// they are not sent.
	Unavailable int
	Truncated   bool // MaxReplayEvents reached: replay again from Until
}

// Redelivery is what a redelivery queued.
type Redelivery struct {
	ID         string // the delivery id, as before
	EndpointID string
	Event      string
}

// DeliveryID returns the id of the delivery of the event whose stream id
// is eventID (its id in GET /v1/events) to the endpoint endpointID: the
// X-Pigeonpost-Webhook-Id of every attempt, replay or redelivery of it.
func DeliveryID(eventID, endpointID string) string { return deliveryID(eventID, endpointID) }

var deliveryIDPattern = regexp.MustCompile(`^whmsg_[0-9a-f]{24}$`)

func (r *Replayer) now() time.Time {
	if r.Now != nil {
		return r.Now().UTC()
	}
	return time.Now().UTC()
}

func (r *Replayer) logger() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}

// setTTL is how long a replay's set of deliveries is kept: past the time
// its last delivery can be given up.
func (r *Replayer) setTTL() time.Duration {
	maxAge := r.MaxAge
	if maxAge <= 0 {
		maxAge = 72 * time.Hour
	}
	return maxAge + 2*time.Hour
}

// fires reports whether the fan-out (Dispatcher.queue) sends ev to ep, an
// endpoint that subscribes to its event, given the account's tracking
// settings: both decide with audienceOf.
func fires(ev store.Event, settings store.TrackingSettings, ep *store.Webhook) bool {
	aud, _ := audienceOf(ev, func() (store.TrackingSettings, error) { return settings, nil })
	return aud.reaches(ep)
}

// Replay queues again, for the endpoint endpointID of k's account, the
// account's events of the window that the endpoint subscribes to (or those
// of in.Events), oldest first.
func (r *Replayer) Replay(ctx context.Context, k *store.Key, endpointID string, in ReplayInput) (*ReplayResult, error) {
	if err := pipeline.RequirePermission(k, store.PermissionFull); err != nil {
		return nil, err
	}
	ep, err := r.Store.Webhook(ctx, k.AccountID, endpointID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, pipeline.NotFound("webhook")
	}
	if err != nil {
		return nil, pipeline.StorageError(err)
	}
	now := r.now()
	res := &ReplayResult{ID: store.NewID("whrp"), EndpointID: ep.ID}
	if res.Since, res.Until, err = r.window(in, now); err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, e := range in.Events {
		if !ValidEvent(e) {
			return nil, pipeline.ErrInvalid.With("events: " + pipeline.Quote(e) + " is not an event")
		}
		if !ep.Subscribed(e) {
			return nil, pipeline.ErrInvalid.With("events: the endpoint does not subscribe to " + pipeline.Quote(e))
		}
		want[e] = true
	}
	if len(want) == 0 {
		for _, e := range ep.Events {
			want[e] = true
		}
	}
	settings, err := r.Store.TrackingSettings(ctx, k.AccountID)
	if err != nil {
		return nil, pipeline.StorageError(err)
	}

	// A replay that has started runs to its end even if the client goes:
	// what it queued is then what the answer would have said.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), replayTimeout)
	defer cancel()
	left, err := r.Store.StartWebhookReplay(ctx, ep.ID, res.ID, replayLockTTL)
	if errors.Is(err, store.ErrReplayRunning) {
		msg := "another replay of this endpoint is queueing; try again in a moment"
		if left > 0 {
			msg = fmt.Sprintf("the last replay of this endpoint has %d deliveries not yet delivered or given up; replay again once they are", left)
		}
		return nil, pipeline.ErrConflict.With(msg)
	}
	if err != nil {
		return nil, pipeline.StorageError(err)
	}
	defer func() { _ = r.Store.EndWebhookReplay(ctx, ep.ID, res.ID) }()

	sel, unavailable, err := r.selectEvents(ctx, k.AccountID, res, want, settings, ep)
	if err != nil {
		return nil, pipeline.StorageError(err)
	}
	res.Unavailable = unavailable
	for i := 0; i < len(sel); i += replayQueueBatch {
		chunk := sel[i:min(i+replayQueueBatch, len(sel))]
		queued, pending, err := r.requeue(ctx, ep, chunk, now, now.Add(time.Duration(i)*time.Millisecond))
		res.Queued += queued
		res.Pending += pending
		if err != nil {
			r.logger().Warn("webhook replay failed part way", "replay", res.ID, "endpoint", ep.ID, "queued", res.Queued, "err", err)
			return nil, pipeline.StorageError(err)
		}
	}
	r.logger().Info("webhook replay queued", "replay", res.ID, "account", k.AccountID, "endpoint", ep.ID,
		"since", res.Since, "until", res.Until, "queued", res.Queued, "pending", res.Pending,
		"unavailable", res.Unavailable, "truncated", res.Truncated)
	return res, nil
}

// window parses and checks the window of a replay, to the millisecond.
func (r *Replayer) window(in ReplayInput, now time.Time) (since, until time.Time, err error) {
	if in.Since == "" {
		return since, until, pipeline.ErrInvalid.With("since: required, an RFC 3339 time such as 2025-01-15T10:00:00Z")
	}
	if since, err = time.Parse(time.RFC3339, in.Since); err != nil {
		return since, until, pipeline.ErrInvalid.With("since: must be an RFC 3339 time such as 2025-01-15T10:00:00Z")
	}
	until = now
	if in.Until != "" {
		if until, err = time.Parse(time.RFC3339, in.Until); err != nil {
			return since, until, pipeline.ErrInvalid.With("until: must be an RFC 3339 time such as 2025-01-16T10:00:00Z")
		}
		if until.After(now) {
			until = now // nothing is recorded after now yet
		}
	}
	since, until = since.UTC().Truncate(time.Millisecond), until.UTC().Truncate(time.Millisecond)
	switch {
	case !since.Before(now.Truncate(time.Millisecond)):
		return since, until, pipeline.ErrInvalid.With("since: must be in the past")
	case !since.Before(until):
		return since, until, pipeline.ErrInvalid.With("until: must be after since")
	case until.Sub(since) > MaxReplayWindow:
		return since, until, pipeline.ErrInvalid.With("since: a replay covers at most 7 days; replay a longer period in several requests")
	case r.Retention > 0 && since.Before(now.Add(-r.Retention)):
		return since, until, pipeline.ErrInvalid.With("since: events older than retention.records (" + days(r.Retention) +
			") cannot be replayed: their emails' records have expired")
	}
	return since, until, nil
}

func days(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return strconv.Itoa(int(d/(24*time.Hour))) + " days"
	}
	return d.String()
}

// picked is an event a replay sends.
type picked struct {
	store.AccountStreamEvent
	name string // its webhook event
}

// selectEvents reads the window of res from the account's event stream,
// oldest first, and returns the events to send: those of want that the
// fan-out fires (fires), with their stream ids, and how many others it
// would have sent but cannot (recorded without one). Past MaxReplayEvents
// it stops at the next millisecond, which becomes res.Until (and sets
// res.Truncated): a replay from there sends each later event once, and
// the millisecond of the last event is sent whole, however many it holds.
func (r *Replayer) selectEvents(ctx context.Context, accountID string, res *ReplayResult, want map[string]bool,
	settings store.TrackingSettings, ep *store.Webhook) ([]picked, int, error) {
	maxEvents := cmp.Or(r.maxEvents, MaxReplayEvents)
	var sel []picked
	unavailable := 0
	cursor := strconv.FormatInt(res.Since.UnixMilli(), 10)
	end := strconv.FormatInt(res.Until.UnixMilli()-1, 10)
	for {
		batch, err := r.Store.AccountEventsBetween(ctx, accountID, cursor, end, replayScanBatch)
		if err != nil {
			return nil, 0, err
		}
		for _, e := range batch {
			name := EventName(e.Event.Type)
			if !want[name] || !fires(e.Event, settings, ep) {
				continue
			}
			if len(sel) >= maxEvents {
				if at := store.StreamIDTime(e.StreamID); !at.Equal(store.StreamIDTime(sel[len(sel)-1].StreamID)) {
					res.Truncated, res.Until = true, at.UTC()
					return sel, unavailable, nil
				}
			}
			if e.EventID == "" {
				unavailable++
				continue
			}
			sel = append(sel, picked{e, name})
		}
		if len(batch) < replayScanBatch {
			return sel, unavailable, nil
		}
		cursor = "(" + batch[len(batch)-1].ID() // the shard's, too: another's entries can share its id
	}
}

// requeue queues the deliveries of chunk to ep, the first due at due.
func (r *Replayer) requeue(ctx context.Context, ep *store.Webhook, chunk []picked, now, due time.Time) (int, int, error) {
	var emails []string
	for _, p := range chunk {
		if p.Event.EmailID != "" {
			emails = append(emails, p.Event.EmailID)
		}
	}
	to, err := r.Store.ToAddresses(ctx, emails)
	if err != nil {
		return 0, 0, err
	}
	ds := make([]*store.WebhookDelivery, len(chunk))
	for i, p := range chunk {
		ds[i] = &store.WebhookDelivery{
			ID: deliveryID(p.EventID, ep.ID), AccountID: p.Event.AccountID, EndpointID: ep.ID, Event: p.name,
			Body: Body(p.Event, to[p.Event.EmailID]), CreatedAt: now, StreamID: p.EventID,
		}
	}
	return r.Store.RequeueWebhookDeliveries(ctx, store.Requeue{Deliveries: ds, Due: due, Replay: ep.ID, ReplayTTL: r.setTTL(), Now: now})
}

// Redeliver queues one of the account's deliveries again, by its id: one
// that was given up, or delivered, as long as its event is still in the
// account's event stream and the delivery in the index of the last week
// (store.WebhookIndexKey) or among the given-up ones. 404 for an id the
// account never had; 409 while the delivery is still queued.
func (r *Replayer) Redeliver(ctx context.Context, k *store.Key, id string) (*Redelivery, error) {
	if err := pipeline.RequirePermission(k, store.PermissionFull); err != nil {
		return nil, err
	}
	notFound := pipeline.NotFound("webhook delivery")
	if !deliveryIDPattern.MatchString(id) {
		return nil, notFound
	}
	now := r.now()
	eventID, endpointID, err := r.Store.WebhookDeliveryEvent(ctx, k.AccountID, id, now)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound
	}
	if err != nil {
		return nil, pipeline.StorageError(err)
	}
	endpoints, err := r.Store.Webhooks(ctx, k.AccountID)
	if err != nil {
		return nil, pipeline.StorageError(err)
	}
	var ep *store.Webhook
	for _, e := range endpoints {
		if (endpointID == "" || e.ID == endpointID) && deliveryID(eventID, e.ID) == id {
			ep = e
		}
	}
	if ep == nil {
		return nil, pipeline.NotFound("the endpoint of webhook delivery " + id)
	}
	if _, err := r.Store.WebhookDelivery(ctx, id); err == nil {
		return nil, pipeline.ErrConflict.With("the delivery is still queued: it is retried on its own schedule")
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, pipeline.StorageError(err)
	}
	e, err := r.Store.AccountEventByID(ctx, k.AccountID, eventID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, pipeline.NotFound("the event of webhook delivery " + id + " (trimmed from the account's event stream)")
	}
	if err != nil {
		return nil, pipeline.StorageError(err)
	}
	to, err := r.Store.ToAddresses(ctx, []string{e.Event.EmailID})
	if err != nil {
		return nil, pipeline.StorageError(err)
	}
	d := &store.WebhookDelivery{
		ID: id, AccountID: k.AccountID, EndpointID: ep.ID, Event: EventName(e.Event.Type),
		Body: Body(e.Event, to[e.Event.EmailID]), CreatedAt: now, StreamID: eventID,
	}
	queued, _, err := r.Store.RequeueWebhookDeliveries(ctx, store.Requeue{Deliveries: []*store.WebhookDelivery{d}, Due: now, Now: now})
	if err != nil {
		return nil, pipeline.StorageError(err)
	}
	if queued == 0 {
		return nil, pipeline.ErrConflict.With("the delivery is still queued: it is retried on its own schedule")
	}
	r.logger().Info("webhook redelivery queued", "delivery", id, "account", k.AccountID, "endpoint", ep.ID)
	return &Redelivery{ID: id, EndpointID: ep.ID, Event: d.Event}, nil
}
