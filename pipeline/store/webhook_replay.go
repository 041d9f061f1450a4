package store

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ---- webhook replays and redeliveries (pipeline/webhooks/replay.go) ----

// deliveryFields are the fields of a delivery's hash (WebhookDeliveryKey),
// as HSET arguments.
func deliveryFields(d *WebhookDelivery) []any {
	return []any{"id", d.ID, "accountId", d.AccountID, "endpointId", d.EndpointID, "event", d.Event,
		"body", d.Body, "attempts", d.Attempts, "createdAt", FormatTime(d.CreatedAt), "lastError", d.LastError,
		"streamId", d.StreamID}
}

// webhookIndexDays is how many days of WebhookIndexKey a redelivery looks
// in; each expires after as many.
const webhookIndexDays = 8

// indexWebhookDeliveries queues on p the entries of ds, deliveries of one
// account's event, in the account's index of delivery ids
// (WebhookIndexKey) of now's day.
func indexWebhookDeliveries(ctx context.Context, p redis.Pipeliner, ds []*WebhookDelivery, streamID string, now time.Time) {
	if len(ds) == 0 {
		return
	}
	key := WebhookIndexKey(ds[0].AccountID, StatsDay(now))
	fields := make([]any, 0, 2*len(ds))
	for _, d := range ds {
		fields = append(fields, strings.TrimPrefix(d.ID, "whmsg_"), streamID)
	}
	p.HSet(ctx, key, fields...)
	p.Expire(ctx, key, webhookIndexDays*24*time.Hour)
}

// AccountStreamEvent is an entry of an account's event stream with the id
// its event has in the global stream of its shard (EventStreamKey, as
// StreamEvent.ID qualifies it), which the webhook fan-out derived its
// deliveries' ids from. EventID is "" for an entry recorded before
// entries carried it (store.go: streamsScript).
type AccountStreamEvent struct {
	StreamEvent
	EventID string
}

// accountStreamEvents reads entries of shard k's account streams.
func accountStreamEvents(k Shard, msgs []redis.XMessage) []AccountStreamEvent {
	evs := streamEventsIn(k, msgs)
	out := make([]AccountStreamEvent, len(msgs))
	for i, m := range msgs {
		out[i].StreamEvent = evs[i]
		if gid, _ := m.Values["gid"].(string); gid != "" {
			out[i].EventID = StreamEvent{Shard: k, StreamID: gid}.ID()
		}
	}
	return out
}

// AccountEventsBetween returns up to count entries of the account's event
// streams from start to end, oldest first: those of every shard in use,
// merged by stream id, then shard, ascending. Both are stream ids as
// XRANGE takes them: inclusive, or exclusive after "(", and a bare
// millisecond time stands for the first (start) or last (end) id of that
// millisecond; an exclusive start may be a StreamEvent.ID, the last entry
// of the previous page, so that entries of other shards with its very
// stream id come next.
func (s *Store) AccountEventsBetween(ctx context.Context, accountID, start, end string, count int) ([]AccountStreamEvent, error) {
	after, exclusive := strings.CutPrefix(start, "(")
	after, at := splitEventID(after)
	var all []AccountStreamEvent
	for _, k := range s.ShardsInUse(ctx) {
		from := start
		if exclusive {
			from = "(" + after
			if k > at {
				from = after // its entries of that very id come after the one in shard at
			}
		}
		msgs, err := s.rdb.XRangeN(ctx, AccountEventsKey(k, accountID), from, end, int64(count)).Result()
		if err != nil {
			return nil, err
		}
		all = append(all, accountStreamEvents(k, msgs)...)
	}
	slices.SortStableFunc(all, func(a, b AccountStreamEvent) int {
		if c := compareStreamIDs(a.StreamID, b.StreamID); c != 0 {
			return c
		}
		return cmp.Compare(a.Shard, b.Shard)
	})
	return all[:min(len(all), count)], nil
}

// eventLookAhead bounds how far past eventID AccountEventByID looks for an
// entry that could not take eventID as its own id.
const eventLookAhead = 100

// AccountEventByID returns the entry of the account's event stream whose
// event has the id eventID in the global stream (a StreamEvent.ID: the
// shard's stream and the id in it); ErrNotFound once it has been trimmed
// (or was recorded before entries carried the global id). Its EventID is
// eventID.
func (s *Store) AccountEventByID(ctx context.Context, accountID, eventID string) (*AccountStreamEvent, error) {
	id, k := splitEventID(eventID)
	msgs, err := s.rdb.XRangeN(ctx, AccountEventsKey(k, accountID), id, "+", eventLookAhead).Result()
	if err != nil {
		return nil, err
	}
	for _, e := range accountStreamEvents(k, msgs) {
		if e.EventID == eventID {
			return &e, nil
		}
	}
	return nil, ErrNotFound
}

// ToAddresses returns the recipient of each of the emails whose record is
// still stored, in one round trip; an email without one is left out.
func (s *Store) ToAddresses(ctx context.Context, emailIDs []string) (map[string]string, error) {
	out := make(map[string]string, len(emailIDs))
	if len(emailIDs) == 0 {
		return out, nil
	}
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, id := range emailIDs {
			p.HGet(ctx, EmailKey(id), "toAddress")
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	for i, c := range cmds {
		if v, err := c.(*redis.StringCmd).Result(); err == nil {
			out[emailIDs[i]] = v
		}
	}
	return out, nil
}

// WebhookDeliveryEvent returns the stream id of the event of one of the
// account's deliveries, and its endpoint when known (the list of given-up
// deliveries says it; the index does not): from the index of the last
// webhookIndexDays days (WebhookIndexKey), else from the account's list of
// given-up deliveries. ErrNotFound if neither has it, which is the case
// for another account's delivery.
func (s *Store) WebhookDeliveryEvent(ctx context.Context, accountID, id string, now time.Time) (streamID, endpointID string, err error) {
	short := strings.TrimPrefix(id, "whmsg_")
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range webhookIndexDays {
			p.HGet(ctx, WebhookIndexKey(accountID, StatsDay(now.AddDate(0, 0, -i))), short)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return "", "", err
	}
	for _, c := range cmds {
		if v, err := c.(*redis.StringCmd).Result(); err == nil && v != "" {
			return v, "", nil
		}
	}
	failed, err := s.FailedWebhooks(ctx, accountID)
	if err != nil {
		return "", "", err
	}
	for _, f := range failed {
		if f.ID == id && f.StreamID != "" {
			return f.StreamID, f.EndpointID, nil
		}
	}
	return "", "", ErrNotFound
}

// ErrReplayRunning is returned by StartWebhookReplay while another replay
// of the endpoint queues, or has deliveries left.
var ErrReplayRunning = errors.New("a replay of the endpoint is running")

// StartWebhookReplay takes the replay lock of an endpoint for replayID for
// at most ttl, unless another replay holds it or the last replay's
// deliveries are not all delivered or given up yet (ErrReplayRunning; left
// is how many are). The lock is taken first, so that no other replay adds
// deliveries while these are counted.
func (s *Store) StartWebhookReplay(ctx context.Context, endpointID, replayID string, ttl time.Duration) (left int, err error) {
	ok, err := s.rdb.SetNX(ctx, WebhookReplayKey(endpointID), replayID, ttl).Result()
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, ErrReplayRunning
	}
	left, err = s.pruneReplay(ctx, endpointID)
	if err == nil && left > 0 {
		err = ErrReplayRunning
	}
	if err != nil {
		_ = s.EndWebhookReplay(context.WithoutCancel(ctx), endpointID, replayID)
		return left, err
	}
	return 0, nil
}

// pruneReplay forgets the deliveries of the endpoint's last replay that are
// gone from the queue, and returns how many are left.
func (s *Store) pruneReplay(ctx context.Context, endpointID string) (int, error) {
	ids, err := s.rdb.SMembers(ctx, WebhookReplayIDsKey(endpointID)).Result()
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, id := range ids {
			p.Exists(ctx, WebhookDeliveryKey(id))
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	var gone []any
	for i, c := range cmds {
		if c.(*redis.IntCmd).Val() == 0 {
			gone = append(gone, ids[i])
		}
	}
	if len(gone) > 0 {
		if err := s.rdb.SRem(ctx, WebhookReplayIDsKey(endpointID), gone...).Err(); err != nil {
			return 0, err
		}
	}
	return len(ids) - len(gone), nil
}

// endReplay deletes the lock KEYS[1] if it is still ARGV[1]'s.
var endReplay = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// EndWebhookReplay releases the lock StartWebhookReplay took.
func (s *Store) EndWebhookReplay(ctx context.Context, endpointID, replayID string) error {
	return endReplay.Run(ctx, s.rdb, []string{WebhookReplayKey(endpointID)}, replayID).Err()
}

// requeueScript queues deliveries that are not queued already, in one
// script. KEYS: the schedule (WebhookDueKey), the index of the day
// (WebhookIndexKey), the set of a replay's deliveries (WebhookReplayIDsKey)
// when ARGV[1] is "1", then each delivery's hash. ARGV[2] and ARGV[3]: the
// TTLs (s) of the index and of the set; ARGV[4]: how many HSET arguments a
// hash has; then, for each delivery, its id, its due time (ms), its index
// field and value, and the HSET arguments of its hash. A delivery whose
// hash exists is still queued under its id: it is left as it is, and
// counted. Returns {queued, pending}.
var requeueScript = redis.NewScript(`
local first = 3
if ARGV[1] == '1' then first = 4 end
local nf = tonumber(ARGV[4])
local queued, pending = 0, 0
local a = 5
for k = first, #KEYS do
  if redis.call('EXISTS', KEYS[k]) == 1 then
    pending = pending + 1
  else
    redis.call('HSET', KEYS[k], unpack(ARGV, a + 4, a + 3 + nf))
    redis.call('ZADD', KEYS[1], ARGV[a + 1], ARGV[a])
    redis.call('HSET', KEYS[2], ARGV[a + 2], ARGV[a + 3])
    if first == 4 then redis.call('SADD', KEYS[3], ARGV[a]) end
    queued = queued + 1
  end
  a = a + 4 + nf
end
if queued > 0 then
  redis.call('EXPIRE', KEYS[2], ARGV[2])
  if first == 4 then redis.call('EXPIRE', KEYS[3], ARGV[3]) end
end
return {queued, pending}
`)

// Requeue is a call of RequeueWebhookDeliveries.
type Requeue struct {
	Deliveries []*WebhookDelivery // AccountID and StreamID set; one account
	// Due is when the first is due; each next one a millisecond later,
	// so that the dispatchers take them in order.
	Due time.Time
	// Replay, when set, is the endpoint whose replay queues them: they
	// join its set (WebhookReplayIDsKey), kept for ReplayTTL.
	Replay    string
	ReplayTTL time.Duration
	Now       time.Time // the day of the index
}

// RequeueWebhookDeliveries queues deliveries again under their ids, with
// their bodies, in one script: a replay's, or a redelivery. A delivery
// whose id is still queued (its first delivery is being retried) is not
// touched: it is counted as pending. Unlike QueueWebhookDeliveries, it
// ignores the fan-out's marker (WebhookSeenKey), which says only that the
// event was queued once.
func (s *Store) RequeueWebhookDeliveries(ctx context.Context, q Requeue) (queued, pending int, err error) {
	if len(q.Deliveries) == 0 {
		return 0, 0, nil
	}
	keys := []string{WebhookDueKey(), WebhookIndexKey(q.Deliveries[0].AccountID, StatsDay(q.Now))}
	replay := "0"
	if q.Replay != "" {
		keys = append(keys, WebhookReplayIDsKey(q.Replay))
		replay = "1"
	}
	nf := len(deliveryFields(q.Deliveries[0]))
	setTTL := max(q.ReplayTTL, time.Hour) // never 0, which would delete the set at once
	args := []any{replay, int64(webhookIndexDays * 24 * time.Hour / time.Second), int64(setTTL / time.Second), nf}
	for i, d := range q.Deliveries {
		keys = append(keys, WebhookDeliveryKey(d.ID))
		args = append(args, d.ID, q.Due.UnixMilli()+int64(i), strings.TrimPrefix(d.ID, "whmsg_"), d.StreamID)
		args = append(args, deliveryFields(d)...)
	}
	res, err := requeueScript.Run(ctx, s.rdb, keys, args...).Int64Slice()
	if err != nil {
		return 0, 0, err
	}
	return int(res[0]), int(res[1]), nil
}
