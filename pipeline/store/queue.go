package store

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The delivery queue is a Redis Stream read through one consumer group:
// an entry stays in the group's pending list until a worker acknowledges it,
// and entries a dead worker left behind are claimed by another after an idle
// time (XAUTOCLAIM). Delivery is therefore at least once; a worker records
// the outcome on the email before it acknowledges, so a re-read entry whose
// email is already final is acknowledged without sending again.

// GroupName is the consumer group of delivery workers.
const GroupName = "deliver"

// Entry is one queued email.
type Entry struct {
	Shard    Shard // whose stream holds it (that of the email: ShardOf)
	StreamID string
	EmailID  string
}

// EnsureGroup creates shard k's stream and its consumer group if they are
// missing.
func (s *Store) EnsureGroup(ctx context.Context, k Shard) error {
	err := s.rdb.XGroupCreateMkStream(ctx, StreamKey(k), GroupName, "0").Err()
	if err != nil && strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return nil
	}
	return err
}

func entries(k Shard, msgs []redis.XMessage) []Entry {
	out := make([]Entry, 0, len(msgs))
	for _, m := range msgs {
		id, _ := m.Values["id"].(string)
		out = append(out, Entry{Shard: k, StreamID: m.ID, EmailID: id})
	}
	return out
}

// readGroup returns up to count new entries of stream for consumer in
// group, waiting up to block. The delivery queue and the webhook
// dispatcher both read their streams this way. The entries in ack, which
// the consumer has handled, are acknowledged in the same round trip, before
// the read: a write of its own would cost Redis an AOF fsync, and its
// replica one, each time when the stream is quiet.
func (s *Store) readGroup(ctx context.Context, stream, group, consumer string, count int, block time.Duration, ack ...string) ([]redis.XMessage, error) {
	args := &redis.XReadGroupArgs{
		Group: group, Consumer: consumer, Streams: []string{stream, ">"}, Count: int64(count), Block: block,
	}
	var read *redis.XStreamSliceCmd
	if len(ack) == 0 {
		read = s.rdb.XReadGroup(ctx, args)
	} else {
		// The read's error is the answer: a connection that failed fails
		// both; an XACK refused alone leaves the entries pending, to be
		// claimed again, as when it fails on its own.
		_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.XAck(ctx, stream, group, ack...)
			read = p.XReadGroup(ctx, args)
			return nil
		})
	}
	res, err := read.Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []redis.XMessage
	for _, st := range res {
		out = append(out, st.Messages...)
	}
	return out, nil
}

// claimGroup takes over up to count entries of stream that have been
// pending in group longer than idle (their reader died).
func (s *Store) claimGroup(ctx context.Context, stream, group, consumer string, idle time.Duration, count int) ([]redis.XMessage, error) {
	msgs, _, err := s.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
		Stream: stream, Group: group, Consumer: consumer, MinIdle: idle, Start: "0-0", Count: int64(count),
	}).Result()
	return msgs, err
}

// Liveness. A consumer that dies (kill -9, a crash, a lost machine) leaves
// the entries it had read pending under its name; XAUTOCLAIM hands them to
// another only after the idle time, minutes, so that a slow attempt is not
// taken over. Each consumer therefore keeps AliveKey(name) with a short
// TTL and renews it every second: the pending entries of a consumer whose
// key is gone are claimed at once by any live one (claimOrphaned), and the
// idle time is left as the last resort for a consumer that is alive but
// stuck.

// orphanMinIdle keeps two live consumers from both claiming one dead
// consumer's entry: the first claim resets the entry's idle time, so the
// second's XCLAIM, which asks for at least this much, passes it by. A dead
// consumer's entries are idle at least its TTL when found.
const orphanMinIdle = time.Second

// Heartbeat says that consumer is running in shard k, for ttl.
func (s *Store) Heartbeat(ctx context.Context, k Shard, consumer string, ttl time.Duration) error {
	return s.rdb.Set(ctx, AliveKey(k, consumer), "1", ttl).Err()
}

// ProbeWrite writes the readiness key of each shard that submissions
// write to, which expires: it fails when a submission's writes would
// (Redis down, out of memory, its disk full) in every shard. The shards
// that failed are passed over by PickShard; while one shard is up,
// submissions go there and the gateway is ready.
func (s *Store) ProbeWrite(ctx context.Context) error {
	var sets []*redis.StatusCmd
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for k := range s.WriteShards() {
			sets = append(sets, p.Set(ctx, HealthKey(k), "1", time.Minute))
		}
		return nil
	})
	var first error
	up := false
	for k, set := range sets {
		err := set.Err()
		s.noteWrite(ctx, Shard(k), err)
		up = up || err == nil
		if first == nil {
			first = err
		}
	}
	if up {
		return nil
	}
	return first
}

// Retire says that consumer has stopped in shard k, so that what it left
// pending there is taken over at once.
func (s *Store) Retire(ctx context.Context, k Shard, consumer string) error {
	return s.rdb.Del(ctx, AliveKey(k, consumer)).Err()
}

// claimOrphaned takes over for consumer up to count entries of stream left
// pending in group by consumers that are not alive, and removes from the
// group the dead consumers that hold nothing (their names would pile up, a
// new one each start).
func (s *Store) claimOrphaned(ctx context.Context, k Shard, stream, group, consumer string, count int) ([]redis.XMessage, error) {
	others, err := s.rdb.XInfoConsumers(ctx, stream, group).Result()
	if err != nil {
		return nil, err
	}
	var out []redis.XMessage
	for _, c := range others {
		if c.Name == consumer || len(out) >= count {
			continue
		}
		alive, err := s.rdb.Exists(ctx, AliveKey(k, c.Name)).Result()
		if err != nil {
			return out, err
		}
		if alive == 1 {
			continue
		}
		if c.Pending == 0 {
			if c.Idle >= orphanMinIdle { // not one that is starting up: it sets its key first
				_ = s.rdb.XGroupDelConsumer(ctx, stream, group, c.Name).Err()
			}
			continue
		}
		pending, err := s.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{
			Stream: stream, Group: group, Consumer: c.Name, Start: "-", End: "+", Count: int64(count - len(out)),
		}).Result()
		if err != nil || len(pending) == 0 {
			continue
		}
		ids := make([]string, len(pending))
		for i, p := range pending {
			ids[i] = p.ID
		}
		msgs, err := s.rdb.XClaim(ctx, &redis.XClaimArgs{
			Stream: stream, Group: group, Consumer: consumer, MinIdle: orphanMinIdle, Messages: ids,
		}).Result()
		if err != nil {
			return out, err
		}
		out = append(out, msgs...)
	}
	return out, nil
}

// ClaimOrphaned takes over up to count of shard k's delivery entries left
// pending by consumers that are not alive there (see Heartbeat).
func (s *Store) ClaimOrphaned(ctx context.Context, k Shard, consumer string, count int) ([]Entry, error) {
	msgs, err := s.claimOrphaned(ctx, k, StreamKey(k), GroupName, consumer, count)
	return entries(k, msgs), err
}

// ReadNew returns up to count new entries of shard k for consumer, waiting
// up to block (negative: not at all).
func (s *Store) ReadNew(ctx context.Context, k Shard, consumer string, count int, block time.Duration) ([]Entry, error) {
	msgs, err := s.readGroup(ctx, StreamKey(k), GroupName, consumer, count, block)
	return entries(k, msgs), err
}

// Claim takes over up to count entries of shard k that have been pending
// longer than idle.
func (s *Store) Claim(ctx context.Context, k Shard, consumer string, idle time.Duration, count int) ([]Entry, error) {
	msgs, err := s.claimGroup(ctx, StreamKey(k), GroupName, consumer, idle, count)
	return entries(k, msgs), err
}

// Ack removes a finished entry from the queue.
func (s *Store) Ack(ctx context.Context, e Entry) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.XAck(ctx, StreamKey(e.Shard), GroupName, e.StreamID)
		p.XDel(ctx, StreamKey(e.Shard), e.StreamID)
		return nil
	})
	return err
}

// Retry moves the entry to the retry schedule, due at `due`, and records the
// email's new fields, in one MULTI, so the email is never both queued and
// scheduled, nor neither.
func (s *Store) Retry(ctx context.Context, e Entry, due time.Time, fields map[string]any, ev *Event) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, EmailKey(e.EmailID), fields)
		if ev != nil {
			ev.EmailID = e.EmailID
			appendEvents(ctx, p, ev)
		}
		p.ZAdd(ctx, RetryKey(e.Shard), redis.Z{Score: float64(due.UnixMilli()), Member: e.EmailID})
		p.XAck(ctx, StreamKey(e.Shard), GroupName, e.StreamID)
		p.XDel(ctx, StreamKey(e.Shard), e.StreamID)
		return nil
	})
	return err
}

// releaseDue moves due emails from the retry schedule to the stream in one
// script: ZREM and XADD done separately would lose or duplicate mail if the
// process died between them. Keys come only from KEYS[] (Redis Cluster).
var releaseDue = redis.NewScript(`
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  redis.call('XADD', KEYS[2], '*', 'id', id)
  redis.call('ZREM', KEYS[1], id)
end
return #ids
`)

// ReleaseDue moves up to count of shard k's emails whose retry time has
// come back to its stream and returns how many it moved.
func (s *Store) ReleaseDue(ctx context.Context, k Shard, now time.Time, count int) (int, error) {
	n, err := releaseDue.Run(ctx, s.rdb, []string{RetryKey(k), StreamKey(k)},
		strconv.FormatInt(now.UnixMilli(), 10), count).Int()
	return n, err
}

// QueueDepth returns the number of entries in the streams and in the retry
// schedules of the shards in use.
func (s *Store) QueueDepth(ctx context.Context) (queued, retrying int64, err error) {
	shards := s.ShardsInUse(ctx)
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range shards {
			p.XLen(ctx, StreamKey(k))
			p.ZCard(ctx, RetryKey(k))
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	for i := 0; i+1 < len(cmds); i += 2 {
		queued += cmds[i].(*redis.IntCmd).Val()
		retrying += cmds[i+1].(*redis.IntCmd).Val()
	}
	return queued, retrying, nil
}
