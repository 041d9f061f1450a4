package store

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"iter"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"
)

// The mail is spread over redis.shards shards (Shard, keys.go). A
// submission writes all its keys to one shard (PickShard, or IdemShard
// with an idempotency key), so that it persists and enqueues in one MULTI;
// the consumers read every shard in use (ShardsInUse): those submissions
// write to and those any earlier configuration wrote to (ShardsKey), so
// that a smaller count drains the shards it no longer writes to.

// SetShards sets the number of shards submissions write to (1 and more;
// 1: shard 0 alone, {q}, as before there were shards). Call it before use.
func (s *Store) SetShards(n int) {
	s.shards = max(1, min(n, MaxShards))
}

// Shards returns the number of shards submissions write to.
func (s *Store) Shards() int { return max(1, s.shards) }

// WriteShards yields the shards submissions write to: 0 … Shards()-1.
func (s *Store) WriteShards() iter.Seq[Shard] {
	return func(yield func(Shard) bool) {
		for k := range s.Shards() {
			if !yield(Shard(k)) {
				return
			}
		}
	}
}

// PickShard returns a shard for a submission without an idempotency key,
// at random among those submissions write to whose last write did not
// fail in the past shardRest (all of them, if none is left): a shard whose
// master is down holds up the first submission that meets it, not those
// that follow.
func (s *Store) PickShard() Shard {
	n := s.Shards()
	if n == 1 {
		return 0
	}
	var up [MaxShards]Shard
	found := 0
	now := s.now().UnixNano()
	for k := range Shard(n) {
		if s.downUntil[k].Load() <= now {
			up[found] = k
			found++
		}
	}
	if found == 0 {
		return Shard(rand.IntN(n))
	}
	return up[rand.IntN(found)]
}

// shardRest is how long PickShard passes over a shard after a write to it
// failed without an answer from its master (down, or out of memory).
const shardRest = 5 * time.Second

// noteWrite records the outcome of a write to shard k (PersistWith,
// ProbeWrite) for PickShard. A write given up by its caller (ctx done)
// or refused for a reason of its own (a claim lost) says nothing of the
// shard; one confirmed by too few replicas was written.
func (s *Store) noteWrite(ctx context.Context, k Shard, err error) {
	switch {
	case err == nil || errors.Is(err, ErrTooFewReplicas):
		if s.downUntil[k].Load() != 0 {
			s.downUntil[k].Store(0)
		}
	case ctx.Err() != nil || errors.Is(err, ErrClaimLost):
	default:
		s.downUntil[k].Store(s.now().Add(shardRest).UnixNano())
	}
}

// IdemShard returns the shard of a submission with an idempotency key
// whose digest (IdempotencyKey) this is: derived from it alone, so that a
// retry finds the key wherever it lands (as long as redis.shards is not
// changed within the key's lifetime).
func (s *Store) IdemShard(digest string) Shard {
	n := s.Shards()
	if n == 1 {
		return 0
	}
	sum := sha256.Sum256([]byte(digest))
	return Shard(binary.BigEndian.Uint64(sum[:8]) % uint64(n))
}

// RegisterShards adds the shards submissions write to to the registry of
// shards in use (ShardsKey). A process calls it before it submits.
func (s *Store) RegisterShards(ctx context.Context) error {
	members := make([]any, 0, s.Shards())
	for k := range s.WriteShards() {
		members = append(members, int(k))
	}
	return s.rdb.SAdd(ctx, ShardsKey(), members...).Err()
}

// ShardsInUse returns, in order, the shards submissions write to and those
// in the registry (written to by this or another process, now or with an
// earlier configuration): the shards consumers read and readers merge.
// The registry is read again once a second at most; while it cannot be
// read (its master down), the last answer stands, or the shards
// submissions write to: its loss stalls no shard.
func (s *Store) ShardsInUse(ctx context.Context) []Shard {
	if c := s.inUse.Load(); c != nil && time.Since(c.at) < time.Second {
		return c.shards
	}
	out := slices.Collect(s.WriteShards())
	members, err := s.rdb.SMembers(ctx, ShardsKey()).Result()
	if err != nil {
		if c := s.inUse.Load(); c != nil {
			return c.shards
		}
		return out
	}
	for _, m := range members {
		n, err := strconv.Atoi(m)
		if err != nil || n < 0 || n >= MaxShards || slices.Contains(out, Shard(n)) {
			continue
		}
		out = append(out, Shard(n))
	}
	slices.Sort(out)
	s.inUse.Store(&shardsSeen{shards: out, at: time.Now()})
	return out
}

// shardsSeen is the last answer of the registry of shards.
type shardsSeen struct {
	shards []Shard
	at     time.Time
}
