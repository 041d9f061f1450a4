package store

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// A send to a segment is acknowledged (202) once its batch, the contact ids
// it goes to and its job are in Redis; its sends are then made chunk by
// chunk by whichever process holds the batch's lease, each chunk's emails
// stored in the MULTI that takes their ids off the queue. A process that
// dies mid-way leaves the rest queued, and another (or the same, restarted)
// takes the lease over when it expires: no contact is sent twice or lost.

// FanOuts lists the batches whose sends are still being made, in every
// shard in use; a shard that cannot be read is left out (and its error
// returned with the others' batches).
func (s *Store) FanOuts(ctx context.Context) ([]string, error) {
	var out []string
	var errs []error
	for _, k := range s.ShardsInUse(ctx) {
		ids, err := s.rdb.SMembers(ctx, FanOutsKey(k)).Result()
		errs = append(errs, err)
		out = append(out, ids...)
	}
	return out, errors.Join(errs...)
}

// leaseScript takes the lease KEYS[1] for token ARGV[1] for ARGV[2] ms when
// it is free or already the token's (a renewal); 1 if held, else 0.
var leaseScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`)

// LeaseFanOut takes or renews the lease on a batch's sends for token.
func (s *Store) LeaseFanOut(ctx context.Context, batchID, token string, ttl time.Duration) (bool, error) {
	n, err := leaseScript.Run(ctx, s.rdb, []string{FanOutLeaseKey(batchID)}, token, ttl.Milliseconds()).Int()
	return n == 1, err
}

// NextFanOut returns the next n contact ids a batch has to send to.
func (s *Store) NextFanOut(ctx context.Context, batchID string, n int) ([]string, error) {
	return s.rdb.LRange(ctx, FanOutQueueKey(batchID), 0, int64(n)-1).Result()
}

// FanOutStep is the progress of a segment's sends that PersistWith
// stores: at the start, the Queue of contact ids to send to (with the
// batch, which holds the job); then, with each chunk's emails, its Taken
// ids off the queue; after the Last chunk, the fan-out forgotten.
type FanOutStep struct {
	BatchID string
	Queue   []string
	Taken   int
	Last    bool
}

func (s *Store) writeFanOutStep(ctx context.Context, p redis.Pipeliner, f *FanOutStep) {
	for start := 0; start < len(f.Queue); start += 1000 {
		chunk := f.Queue[start:min(start+1000, len(f.Queue))]
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		p.RPush(ctx, FanOutQueueKey(f.BatchID), args...)
	}
	if len(f.Queue) > 0 {
		p.SAdd(ctx, FanOutsKey(ShardOf(f.BatchID)), f.BatchID)
	}
	if f.Taken > 0 {
		p.LTrim(ctx, FanOutQueueKey(f.BatchID), int64(f.Taken), -1)
	}
	if f.Last {
		p.HSet(ctx, BatchKey(f.BatchID), "fanningOut", boolField(false))
		p.HDel(ctx, BatchKey(f.BatchID), fieldBatchJob)
		p.SRem(ctx, FanOutsKey(ShardOf(f.BatchID)), f.BatchID)
		p.Del(ctx, FanOutQueueKey(f.BatchID), FanOutLeaseKey(f.BatchID))
	}
}

// StopFanOut gives up the rest of a batch's sends (its key was revoked, or
// its job cannot be read), in one MULTI.
func (s *Store) StopFanOut(ctx context.Context, batchID string) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		s.writeFanOutStep(ctx, p, &FanOutStep{BatchID: batchID, Last: true})
		return nil
	})
	return err
}

// KeyByID returns an API key's record by its id; ErrNotFound once it is
// revoked.
func (s *Store) KeyByID(ctx context.Context, id string) (*Key, error) {
	hash, err := s.rdb.Get(ctx, KeyIDKey(id)).Result()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	m, err := s.rdb.HGetAll(ctx, KeyByHashKey(hash)).Result()
	if err != nil {
		return nil, err
	}
	if len(m) == 0 {
		return nil, ErrNotFound
	}
	return keyFromHash(m), nil
}
