package store

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// An idempotency key is a hash: state (pending or done), fp (fingerprint of
// the request), token (the claim of the request running it, while pending)
// and response (once done). The pending marker expires on its own so that a
// request that died before finishing does not block the key for long.
const (
	IdemStatePending = "pending"
	IdemStateDone    = "done"

	idemFieldState    = "state"
	idemFieldFP       = "fp"
	idemFieldToken    = "token"
	idemFieldResponse = "response"
)

// IdemRecord is the state of an idempotency key held by an earlier request.
type IdemRecord struct {
	State       string
	Fingerprint string
	Response    []byte
}

// idemClaim sets a pending marker if the key is free (atomically), else
// returns the key's fields.
var idemClaim = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('HGETALL', KEYS[1])
end
redis.call('HSET', KEYS[1], 'state', 'pending', 'fp', ARGV[1], 'token', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {}
`)

// IdemClaim takes key for a request with fingerprint fp, marking it pending
// under token for pendingTTL. It returns nil when the key was free and is now
// this request's, else the record of the request that holds it.
func (s *Store) IdemClaim(ctx context.Context, key, fp, token string, pendingTTL time.Duration) (*IdemRecord, error) {
	res, err := idemClaim.Run(ctx, s.rdb, []string{key}, fp, token, pendingTTL.Milliseconds()).StringSlice()
	if err != nil {
		return nil, err
	}
	if len(res) == 0 {
		return nil, nil
	}
	fields := make(map[string]string, len(res)/2)
	for i := 0; i+1 < len(res); i += 2 {
		fields[res[i]] = res[i+1]
	}
	return idemRecordOf(fields), nil
}

// IdemGet returns the record of key, or nil when no request holds it.
func (s *Store) IdemGet(ctx context.Context, key string) (*IdemRecord, error) {
	fields, err := s.rdb.HGetAll(ctx, key).Result()
	if err != nil || len(fields) == 0 {
		return nil, err
	}
	return idemRecordOf(fields), nil
}

func idemRecordOf(fields map[string]string) *IdemRecord {
	return &IdemRecord{State: fields[idemFieldState], Fingerprint: fields[idemFieldFP], Response: []byte(fields[idemFieldResponse])}
}

// IdemFind returns the index of the first of keys that exists, or -1: it
// looks them up in one round trip (on a cluster, one per master).
func (s *Store) IdemFind(ctx context.Context, keys []string) (int, error) {
	cmds := make([]*redis.IntCmd, len(keys))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, key := range keys {
			cmds[i] = p.Exists(ctx, key)
		}
		return nil
	}); err != nil {
		return -1, err
	}
	for i, c := range cmds {
		if c.Val() > 0 {
			return i, nil
		}
	}
	return -1, nil
}

// idemFinish completes (ARGV[2] = response, ARGV[3] = ttl) or, with no
// response argument, releases the key, only while token ARGV[1] holds it.
var idemFinish = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then
  return 0
end
if #ARGV == 1 then
  redis.call('DEL', KEYS[1])
  return 1
end
redis.call('HSET', KEYS[1], 'state', 'done', 'response', ARGV[2])
redis.call('HDEL', KEYS[1], 'token')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`)

// IdemComplete records response under key for ttl if token still holds it,
// and reports whether it did.
func (s *Store) IdemComplete(ctx context.Context, key, token string, response []byte, ttl time.Duration) (bool, error) {
	n, err := idemFinish.Run(ctx, s.rdb, []string{key}, token, response, ttl.Milliseconds()).Int()
	return n == 1, err
}

// IdemRelease frees key if token still holds it (the request failed: the
// client may try again with the same key).
func (s *Store) IdemRelease(ctx context.Context, key, token string) error {
	return idemFinish.Run(ctx, s.rdb, []string{key}, token).Err()
}
