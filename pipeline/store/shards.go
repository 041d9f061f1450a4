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

	"github.com/redis/go-redis/v9"
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
// retry finds the key wherever it lands (IdemShards: also after
// redis.shards changed).
func (s *Store) IdemShard(digest string) Shard { return idemShard(digest, s.Shards()) }

// idemShard is the shard of an idempotency key's digest among n shards.
func idemShard(digest string, n int) Shard {
	if n <= 1 {
		return 0
	}
	sum := sha256.Sum256([]byte(digest))
	return Shard(binary.BigEndian.Uint64(sum[:8]) % uint64(n))
}

// IdemShards returns the shards where an idempotency key of this digest
// may be: first IdemShard, where a new claim goes; then the shard each
// other count in recent use (a fleet in the middle of a change of
// redis.shards, or one changed within the keys' lifetime) gives it.
func (s *Store) IdemShards(ctx context.Context, digest string) []Shard {
	out := []Shard{s.IdemShard(digest)}
	for _, n := range s.registry(ctx).counts {
		if k := idemShard(digest, n); !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

// countsKeptFor is how long a shard count no process has registered
// since still counts for IdemShards: longer than an idempotency key lives
// (24 h).
const countsKeptFor = 25 * time.Hour

// RegisterShards adds the shards submissions write to to the registry of
// shards in use (ShardsKey), and the count to that of counts in use
// (ShardCountsKey). A process calls it before it submits; the registry
// renews the count once an hour (registry).
func (s *Store) RegisterShards(ctx context.Context) error {
	members := make([]any, 0, s.Shards())
	for k := range s.WriteShards() {
		members = append(members, int(k))
	}
	now := s.now()
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.SAdd(ctx, ShardsKey(), members...)
		p.HSet(ctx, ShardCountsKey(), strconv.Itoa(s.Shards()), now.Unix())
		return nil
	})
	if err == nil {
		s.registered.Store(now.Unix())
	}
	return err
}

// ShardsInUse returns, in order, the shards submissions write to and those
// in the registry (written to by this or another process, now or with an
// earlier configuration): the shards consumers read and readers merge.
func (s *Store) ShardsInUse(ctx context.Context) []Shard { return s.registry(ctx).shards }

// registry returns the registry of shards and counts, read again once a
// second at most. While it cannot be read (its master down), the last
// answer stands, or the shards submissions write to: its loss stalls no
// shard, and costs a failed read a second.
func (s *Store) registry(ctx context.Context) *shardsSeen {
	now := s.now()
	if c := s.inUse.Load(); c != nil && now.Sub(c.at) < time.Second {
		return c
	}
	if now.Unix()-s.registered.Load() > int64(time.Hour.Seconds()) {
		_ = s.RegisterShards(ctx)
	}
	var members *redis.StringSliceCmd
	var counts *redis.MapStringStringCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		members, counts = p.SMembers(ctx, ShardsKey()), p.HGetAll(ctx, ShardCountsKey())
		return nil
	})
	if err != nil {
		// Asked again in a second, not at each call: the registry's
		// master may be down, or not answering.
		stale := &shardsSeen{shards: slices.Collect(s.WriteShards())}
		if c := s.inUse.Load(); c != nil {
			*stale = *c
		}
		stale.at = now
		s.inUse.Store(stale)
		return stale
	}
	seen := &shardsSeen{shards: slices.Collect(s.WriteShards()), at: now}
	for _, m := range members.Val() {
		n, err := strconv.Atoi(m)
		if err != nil || n < 0 || n >= MaxShards || slices.Contains(seen.shards, Shard(n)) {
			continue
		}
		seen.shards = append(seen.shards, Shard(n))
	}
	slices.Sort(seen.shards)
	for count, at := range counts.Val() {
		n, err1 := strconv.Atoi(count)
		unix, err2 := strconv.ParseInt(at, 10, 64)
		if err1 == nil && err2 == nil && n != s.Shards() && n >= 1 && n <= MaxShards &&
			now.Sub(time.Unix(unix, 0)) < countsKeptFor {
			seen.counts = append(seen.counts, n)
		}
	}
	slices.Sort(seen.counts)
	s.inUse.Store(seen)
	return seen
}

// shardsSeen is the last answer of the registry of shards.
type shardsSeen struct {
	shards []Shard // ShardsInUse
	counts []int   // counts in recent use other than the process's
	at     time.Time
}
