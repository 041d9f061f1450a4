package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ---- webhook endpoints ----

// Webhook is an account's webhook endpoint. The secret is kept in clear:
// the dispatcher signs every delivery with it. The API shows it once.
type Webhook struct {
	ID        string    `json:"id"`
	URL       string    `json:"url"`
	Events    []string  `json:"events"`
	Secret    string    `json:"secret"`
	CreatedAt time.Time `json:"createdAt"`
	// MachineEvents: the endpoint also gets the opens and clicks of
	// machines (MachineEvent), flagged; by default it gets people's only.
	MachineEvents bool `json:"machineEvents,omitempty"`
}

// Subscribed reports whether the endpoint wants event (e.g. "email.opened").
func (w *Webhook) Subscribed(event string) bool {
	for _, e := range w.Events {
		if e == event {
			return true
		}
	}
	return false
}

// ErrLimit is returned when an account has as many records as allowed.
var ErrLimit = errors.New("limit reached")

// AddWebhook stores a new endpoint of the account unless it has max already.
func (s *Store) AddWebhook(ctx context.Context, accountID string, w *Webhook, max int) error {
	n, err := s.rdb.HLen(ctx, WebhooksKey(accountID)).Result()
	if err != nil {
		return err
	}
	if int(n) >= max {
		return ErrLimit
	}
	return s.rdb.HSet(ctx, WebhooksKey(accountID), w.ID, mustJSON(w)).Err()
}

// Webhooks returns the account's endpoints, oldest first.
func (s *Store) Webhooks(ctx context.Context, accountID string) ([]*Webhook, error) {
	all, err := s.rdb.HGetAll(ctx, WebhooksKey(accountID)).Result()
	if err != nil {
		return nil, err
	}
	out := make([]*Webhook, 0, len(all))
	for _, raw := range all {
		var w Webhook
		if err := json.Unmarshal([]byte(raw), &w); err != nil {
			return nil, fmt.Errorf("decode webhook: %w", err)
		}
		out = append(out, &w)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// Webhook returns one endpoint of the account; ErrNotFound if none.
func (s *Store) Webhook(ctx context.Context, accountID, id string) (*Webhook, error) {
	return hgetJSON[Webhook](ctx, s.rdb, WebhooksKey(accountID), id, "webhook")
}

// DeleteWebhook removes an endpoint; ErrNotFound if the account has no such
// endpoint. Its pending deliveries are dropped when they come due.
func (s *Store) DeleteWebhook(ctx context.Context, accountID, id string) error {
	n, err := s.rdb.HDel(ctx, WebhooksKey(accountID), id).Result()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// ---- the event stream, read by the webhook dispatcher ----

// WebhookGroup is the consumer group of webhook dispatchers on the event
// stream (EventStreamKey).
const WebhookGroup = "webhooks"

// StreamEvent is one entry of an event stream.
type StreamEvent struct {
	Shard    Shard // whose stream it is in
	StreamID string
	Event    Event // AccountID and EmailID set
}

// EnsureWebhookGroup creates the event stream and the dispatchers' consumer
// group if they are missing. A new group starts at the end of the stream:
// events recorded before the first dispatcher started fire no webhooks.
//
// Each shard has its event stream (that of its emails' events): k names it.
func (s *Store) EnsureWebhookGroup(ctx context.Context, k Shard) error {
	err := s.rdb.XGroupCreateMkStream(ctx, EventStreamKey(k), WebhookGroup, "$").Err()
	if err != nil && strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return nil
	}
	return err
}

func streamEvents(msgs []redis.XMessage) []StreamEvent {
	out := make([]StreamEvent, 0, len(msgs))
	for _, m := range msgs {
		se := StreamEvent{StreamID: m.ID}
		raw, _ := m.Values["event"].(string)
		_ = json.Unmarshal([]byte(raw), &se.Event) // a bad entry has an empty Type and is skipped
		se.Event.AccountID, _ = m.Values["account"].(string)
		if id, ok := m.Values["email"].(string); ok {
			se.Event.EmailID = id
		}
		out = append(out, se)
	}
	return out
}

// streamEventsIn is streamEvents for entries of shard k's stream.
func streamEventsIn(k Shard, msgs []redis.XMessage) []StreamEvent {
	out := streamEvents(msgs)
	for i := range out {
		out[i].Shard = k
	}
	return out
}

// ReadEvents returns up to count new events for consumer, waiting up to
// block; first, in the same round trip, it acknowledges the events in ack
// (AckEvents). When the read fails, ack may not have been applied: send it
// again.
func (s *Store) ReadEvents(ctx context.Context, k Shard, consumer string, count int, block time.Duration, ack ...string) ([]StreamEvent, error) {
	msgs, err := s.readGroup(ctx, EventStreamKey(k), WebhookGroup, consumer, count, block, ack...)
	return streamEventsIn(k, msgs), err
}

// ClaimEvents takes over up to count events that another dispatcher read
// but did not acknowledge within idle (it died).
func (s *Store) ClaimEvents(ctx context.Context, k Shard, consumer string, idle time.Duration, count int) ([]StreamEvent, error) {
	msgs, err := s.claimGroup(ctx, EventStreamKey(k), WebhookGroup, consumer, idle, count)
	return streamEventsIn(k, msgs), err
}

// ClaimOrphanedEvents takes over up to count events left pending by
// dispatchers that are not alive (see Heartbeat).
func (s *Store) ClaimOrphanedEvents(ctx context.Context, k Shard, consumer string, count int) ([]StreamEvent, error) {
	msgs, err := s.claimOrphaned(ctx, k, EventStreamKey(k), WebhookGroup, consumer, count)
	return streamEventsIn(k, msgs), err
}

// AckEvents marks events as handled by the dispatchers. The entries stay in
// the stream (trimmed by length) for other readers.
func (s *Store) AckEvents(ctx context.Context, k Shard, streamIDs ...string) error {
	return s.rdb.XAck(ctx, EventStreamKey(k), WebhookGroup, streamIDs...).Err()
}

// ---- the webhook delivery queue ----

// WebhookDelivery is one event to POST to one endpoint. The body is built
// once, when the event is fanned out, so that every attempt sends the same
// bytes under the same id.
type WebhookDelivery struct {
	ID         string
	AccountID  string
	EndpointID string
	Event      string // e.g. email.opened
	Body       []byte
	Attempts   int
	CreatedAt  time.Time
	LastError  string
	// StreamID is the id of the event in the global stream of its shard
	// (StreamEvent.ID), which the delivery id is derived from: a
	// redelivery finds the event by it.
	StreamID string
}

// seenTTL is how long fan-out of one stream entry is remembered; longer than
// any dispatcher could hold an entry unacknowledged.
const seenTTL = 7 * 24 * time.Hour

// QueueWebhookDeliveries schedules ds for an attempt at now and marks the
// event stream entry streamID as fanned out, in one MULTI; each delivery id
// joins the index that a redelivery finds the event by
// (indexWebhookDeliveries). If the entry was fanned out already (a dispatcher
// died before acknowledging it), nothing is queued again and it returns
// false.
func (s *Store) QueueWebhookDeliveries(ctx context.Context, streamID string, ds []*WebhookDelivery, now time.Time) (bool, error) {
	seen, err := s.rdb.Exists(ctx, WebhookSeenKey(streamID)).Result()
	if err != nil {
		return false, err
	}
	if seen > 0 {
		return false, nil
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, d := range ds {
			d := *d
			d.StreamID = streamID
			p.HSet(ctx, WebhookDeliveryKey(d.ID), deliveryFields(&d)...)
			p.ZAdd(ctx, WebhookDueKey(), redis.Z{Score: float64(now.UnixMilli()), Member: d.ID})
		}
		indexWebhookDeliveries(ctx, p, ds, streamID, now)
		p.Set(ctx, WebhookSeenKey(streamID), "1", seenTTL)
		return nil
	})
	return err == nil, err
}

// leaseDue takes up to ARGV[2] deliveries due at ARGV[1] and moves each to
// ARGV[3], the end of its lease, in one script: two dispatchers never take
// the same delivery, and one whose dispatcher dies comes due again when
// the lease ends.
var leaseDue = redis.NewScript(`
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[3], id)
end
return ids
`)

// LeaseDueWebhooks returns up to count delivery ids due at now, leased
// until now+lease.
func (s *Store) LeaseDueWebhooks(ctx context.Context, now time.Time, lease time.Duration, count int) ([]string, error) {
	return leaseDue.Run(ctx, s.rdb, []string{WebhookDueKey()},
		strconv.FormatInt(now.UnixMilli(), 10), count, strconv.FormatInt(now.Add(lease).UnixMilli(), 10)).StringSlice()
}

// WebhookDelivery returns a pending delivery; ErrNotFound if it is gone.
func (s *Store) WebhookDelivery(ctx context.Context, id string) (*WebhookDelivery, error) {
	m, err := s.rdb.HGetAll(ctx, WebhookDeliveryKey(id)).Result()
	if err != nil {
		return nil, err
	}
	if len(m) == 0 {
		return nil, ErrNotFound
	}
	d := &WebhookDelivery{
		ID: m["id"], AccountID: m["accountId"], EndpointID: m["endpointId"], Event: m["event"],
		Body: []byte(m["body"]), LastError: m["lastError"], StreamID: m["streamId"],
	}
	d.Attempts, _ = strconv.Atoi(m["attempts"])
	if t := parseTime(m["createdAt"]); t != nil {
		d.CreatedAt = *t
	}
	return d, nil
}

// FinishWebhookDelivery removes a delivery that succeeded or whose
// endpoint is gone.
func (s *Store) FinishWebhookDelivery(ctx context.Context, id string) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, WebhookDeliveryKey(id))
		p.ZRem(ctx, WebhookDueKey(), id)
		return nil
	})
	return err
}

// RetryWebhookDelivery records a failed attempt and schedules the next at due.
func (s *Store) RetryWebhookDelivery(ctx context.Context, d *WebhookDelivery, due time.Time) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, WebhookDeliveryKey(d.ID), "attempts", d.Attempts, "lastError", d.LastError)
		p.ZAdd(ctx, WebhookDueKey(), redis.Z{Score: float64(due.UnixMilli()), Member: d.ID})
		return nil
	})
	return err
}

// FailedWebhook is a delivery that was given up.
type FailedWebhook struct {
	ID         string    `json:"id"`
	EndpointID string    `json:"endpointId"`
	Event      string    `json:"event"`
	Attempts   int       `json:"attempts"`
	LastError  string    `json:"lastError"`
	CreatedAt  time.Time `json:"createdAt"`
	FailedAt   time.Time `json:"failedAt"`
	// StreamID is the delivery's (WebhookDelivery.StreamID), kept for a
	// redelivery; "" in a record from before it was kept.
	StreamID string `json:"streamId,omitempty"`
}

// maxFailedWebhooks bounds each account's list of failed deliveries.
const maxFailedWebhooks = 100

// FailWebhookDelivery gives a delivery up: it leaves the queue and joins the
// account's list of failed deliveries, in one MULTI.
func (s *Store) FailWebhookDelivery(ctx context.Context, d *WebhookDelivery, at time.Time) error {
	f := FailedWebhook{ID: d.ID, EndpointID: d.EndpointID, Event: d.Event, Attempts: d.Attempts,
		LastError: d.LastError, CreatedAt: d.CreatedAt, FailedAt: at, StreamID: d.StreamID}
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, WebhookDeliveryKey(d.ID))
		p.ZRem(ctx, WebhookDueKey(), d.ID)
		p.LPush(ctx, WebhookFailedKey(d.AccountID), mustJSON(f))
		p.LTrim(ctx, WebhookFailedKey(d.AccountID), 0, maxFailedWebhooks-1)
		return nil
	})
	return err
}

// FailedWebhooks returns the account's given-up deliveries, newest first.
func (s *Store) FailedWebhooks(ctx context.Context, accountID string) ([]FailedWebhook, error) {
	raw, err := s.rdb.LRange(ctx, WebhookFailedKey(accountID), 0, -1).Result()
	if err != nil {
		return nil, err
	}
	out := make([]FailedWebhook, 0, len(raw))
	for _, r := range raw {
		var f FailedWebhook
		if json.Unmarshal([]byte(r), &f) == nil {
			out = append(out, f)
		}
	}
	return out, nil
}

// WebhookAttempt is one attempt at a delivery, as the endpoint's list of
// recent attempts keeps it.
type WebhookAttempt struct {
	DeliveryID string    `json:"deliveryId"`
	EndpointID string    `json:"endpointId"`
	Event      string    `json:"event"`
	Attempt    int       `json:"attempt"` // 1 for the first
	At         time.Time `json:"at"`
	// Outcome is delivered, retrying (another attempt is scheduled) or
	// failed (given up).
	Outcome string `json:"outcome"`
	// HTTPStatus is the endpoint's answer; 0 when there was none (refused,
	// timed out, connection failed).
	HTTPStatus int `json:"httpStatus"`
	// LatencyMs is how long the POST took, to the answer or the failure.
	LatencyMs int64 `json:"latencyMs"`
	// Response is the status line, or the error without an answer.
	Response string `json:"response"`
	// Body is the start of the answer's body, kept only when endpoints
	// must be public (webhooks.Dispatcher.KeepAnswers; docs/security.md).
	Body string `json:"body,omitempty"`
}

// Outcomes of a webhook attempt.
const (
	AttemptDelivered = "delivered"
	AttemptRetrying  = "retrying"
	AttemptFailed    = "failed"
)

// Bounds of an endpoint's list of recent attempts.
const (
	MaxWebhookAttempts = 50
	webhookAttemptsTTL = 7 * 24 * time.Hour
)

// RecordWebhookAttempt adds a to the front of the endpoint's list of recent
// attempts, which keeps the latest MaxWebhookAttempts and expires a week
// after the last.
func (s *Store) RecordWebhookAttempt(ctx context.Context, accountID string, a WebhookAttempt) error {
	key := WebhookAttemptsKey(accountID, a.EndpointID)
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.LPush(ctx, key, mustJSON(a))
		p.LTrim(ctx, key, 0, MaxWebhookAttempts-1)
		p.Expire(ctx, key, webhookAttemptsTTL)
		return nil
	})
	return err
}

// WebhookAttempts returns up to limit of the endpoint's recent attempts,
// newest first.
func (s *Store) WebhookAttempts(ctx context.Context, accountID, endpointID string, limit int) ([]WebhookAttempt, error) {
	if limit <= 0 || limit > MaxWebhookAttempts {
		limit = MaxWebhookAttempts
	}
	raw, err := s.rdb.LRange(ctx, WebhookAttemptsKey(accountID, endpointID), 0, int64(limit-1)).Result()
	if err != nil {
		return nil, err
	}
	out := make([]WebhookAttempt, 0, len(raw))
	for _, r := range raw {
		var a WebhookAttempt
		if json.Unmarshal([]byte(r), &a) == nil {
			out = append(out, a)
		}
	}
	return out, nil
}

// WebhookQueueDepth returns the number of pending webhook deliveries.
func (s *Store) WebhookQueueDepth(ctx context.Context) (int64, error) {
	return s.rdb.ZCard(ctx, WebhookDueKey()).Result()
}
