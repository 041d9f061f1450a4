package store

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Traffic shaping per destination (pipeline/deliver/shaping.go) keeps its
// state here, so that every process delivering to a destination honours one
// limit: connection leases in a sorted set scored by their expiry (a killed
// process's leases lapse by themselves), the message rate as a GCRA
// theoretical arrival time, and a suspension after a provider's back-off
// reply. Times are passed in, never read from the Redis clock, so that a
// fake clock drives them in tests; the keys' own TTLs only collect garbage.

// Admission is the answer of AdmitDestination.
type Admission int

const (
	Admitted        Admission = iota // a lease was taken
	Suspended                        // the destination is suspended until the returned time
	RateLimited                      // over the message rate: not before the returned time
	ConnectionsFull                  // every connection slot is leased
)

// destAdmit checks KEYS[1] (suspension), KEYS[2] (rate) and KEYS[3]
// (leases) of one destination and, when all allow, leases a connection
// slot and takes a rate token, atomically. ARGV: now (ms), lease id, lease
// expiry (ms), lease key TTL (ms), connection limit (0: none), rate
// interval (ms; 0: no rate limit), burst. Returns {code, ms}.
var destAdmit = redis.NewScript(`
local now = tonumber(ARGV[1])
local untilms = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
if untilms > now then return {1, untilms} end
local interval = tonumber(ARGV[6])
local tat = now
if interval > 0 then
  tat = math.max(tonumber(redis.call('GET', KEYS[2]) or '0'), now)
  local allowAt = tat - interval * (tonumber(ARGV[7]) - 1)
  if now < allowAt then return {2, allowAt} end
end
if ARGV[2] ~= '' then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  local limit = tonumber(ARGV[5])
  if limit > 0 and redis.call('ZCARD', KEYS[3]) >= limit then return {3, 0} end
  redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2])
  redis.call('PEXPIRE', KEYS[3], ARGV[4])
end
if interval > 0 then
  redis.call('SET', KEYS[2], tat + interval, 'PX', tat + interval - now + 60000)
end
return {0, 0}
`)

// AdmitDestination takes a connection lease on dest, valid until expiry,
// and a message of its rate, unless dest is suspended, over its message
// rate (ratePerMinute, with bursts of burst messages; 0: no limit) or has
// maxConns leases out (0: no limit). Otherwise it says why, with the time
// to try again when known. An empty leaseID takes no lease (the caller
// holds one already), only the message.
func (s *Store) AdmitDestination(ctx context.Context, dest, leaseID string, now, expiry time.Time, maxConns, ratePerMinute, burst int) (Admission, time.Time, error) {
	var interval int64
	if ratePerMinute > 0 {
		interval = max(int64(time.Minute/time.Millisecond)/int64(ratePerMinute), 1)
	}
	res, err := destAdmit.Run(ctx, s.rdb, []string{DestSuspendKey(dest), DestRateKey(dest), DestConnsKey(dest)},
		now.UnixMilli(), leaseID, expiry.UnixMilli(), max(expiry.Sub(now), time.Second).Milliseconds(),
		maxConns, interval, max(burst, 1)).Int64Slice()
	if err != nil {
		return 0, time.Time{}, err
	}
	if len(res) != 2 {
		return 0, time.Time{}, errors.New("destination admission: unexpected reply")
	}
	var at time.Time
	if res[1] > 0 {
		at = time.UnixMilli(res[1])
	}
	return Admission(res[0]), at, nil
}

// RenewDestinationLease moves the expiry of a lease still held; a lease
// that already lapsed is not taken again.
func (s *Store) RenewDestinationLease(ctx context.Context, dest, leaseID string, expiry time.Time, ttl time.Duration) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAddXX(ctx, DestConnsKey(dest), redis.Z{Score: float64(expiry.UnixMilli()), Member: leaseID})
		p.PExpire(ctx, DestConnsKey(dest), ttl)
		return nil
	})
	return err
}

// ReleaseDestinationLease gives a connection slot back.
func (s *Store) ReleaseDestinationLease(ctx context.Context, dest, leaseID string) error {
	return s.rdb.ZRem(ctx, DestConnsKey(dest), leaseID).Err()
}

// destSuspend suspends KEYS[1] from ARGV[1] (now, ms) unless it already
// is: for ARGV[2] ms doubled per level, at most ARGV[3] ms. The level
// starts over once the destination went ARGV[3] ms past its last
// suspension without another. ARGV[4] is the reason. Returns {until, level}.
var destSuspend = redis.NewScript(`
local now = tonumber(ARGV[1])
local maxd = tonumber(ARGV[3])
local untilms = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
local level = tonumber(redis.call('HGET', KEYS[1], 'level') or '0')
if untilms > now then return {untilms, level} end
if now - untilms > maxd then level = 0 end
level = level + 1
local d = tonumber(ARGV[2])
for i = 2, level do
  d = d * 2
  if d >= maxd then break end
end
d = math.min(d, maxd)
untilms = now + d
redis.call('HSET', KEYS[1], 'until', untilms, 'level', level, 'reason', ARGV[4], 'since', now)
redis.call('PEXPIRE', KEYS[1], d + 2 * maxd)
return {untilms, level}
`)

// SuspendDestination suspends dest from now for base doubled at each
// suspension in a row, at most maxd; a destination already suspended
// keeps its time. It returns when the suspension ends and its level (1 for
// the first in a row).
func (s *Store) SuspendDestination(ctx context.Context, dest string, now time.Time, base, maxd time.Duration, reason string) (time.Time, int, error) {
	res, err := destSuspend.Run(ctx, s.rdb, []string{DestSuspendKey(dest)},
		now.UnixMilli(), base.Milliseconds(), maxd.Milliseconds(), reason).Int64Slice()
	if err != nil {
		return time.Time{}, 0, err
	}
	if len(res) != 2 {
		return time.Time{}, 0, errors.New("destination suspension: unexpected reply")
	}
	return time.UnixMilli(res[0]), int(res[1]), nil
}

// maxIndexedDestinations bounds the index of destinations that were
// suspended or limited: the oldest are dropped.
const maxIndexedDestinations = 1000

// NoteDestination records that dest was suspended or limited at now, for
// ListDestinations.
func (s *Store) NoteDestination(ctx context.Context, dest string, now time.Time) error {
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAdd(ctx, DestinationsKey(), redis.Z{Score: float64(now.UnixMilli()), Member: dest})
		p.ZRemRangeByRank(ctx, DestinationsKey(), 0, -maxIndexedDestinations-1)
		return nil
	})
	return err
}

// destDeferred adds an email to a destination's deferred mail (KEYS[1],
// DestWaitingKey) until its next attempt (ARGV[2], ms), drops the members
// whose time has come (now: ARGV[3]) and keeps the key a minute past the
// last one's time (a TTL from the caller's clock, not Redis's).
var destDeferred = redis.NewScript(`
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then
  redis.call('PEXPIRE', KEYS[1], math.floor(tonumber(last[2]) - tonumber(ARGV[3])) + 60000)
end
return 1
`)

// Deferred records that the email emailID waits for dest until due, for
// the destination's queue depth (DestinationState.Waiting), and lists dest
// (NoteDestination).
func (s *Store) Deferred(ctx context.Context, dest, emailID string, due, now time.Time) error {
	if err := destDeferred.Run(ctx, s.rdb, []string{DestWaitingKey(dest)}, emailID, due.UnixMilli(), now.UnixMilli()).Err(); err != nil {
		return err
	}
	return s.NoteDestination(ctx, dest, now)
}

// DestinationState is what ListDestinations reports of one destination.
type DestinationState struct {
	Name           string
	SuspendedUntil *time.Time // nil: not suspended now
	Level          int        // suspensions in a row
	Reason         string     // the reply that suspended it last
	Connections    int        // connection leases held now
	Waiting        int        // emails deferred for it, their next attempt still to come
	LastLimited    time.Time  // the last time it was suspended or limited
}

// ListDestinations returns the destinations suspended or limited in the
// last `within` before now, the most recent first, at most limit.
func (s *Store) ListDestinations(ctx context.Context, now time.Time, within time.Duration, limit int) ([]DestinationState, error) {
	zs, err := s.rdb.ZRevRangeByScoreWithScores(ctx, DestinationsKey(), &redis.ZRangeBy{
		Min: strconv.FormatInt(now.Add(-within).UnixMilli(), 10), Max: "+inf", Count: int64(limit),
	}).Result()
	if err != nil {
		return nil, err
	}
	// The keys are in as many slots as destinations: a pipeline, not a
	// MULTI (go-redis splits it by node on a cluster).
	hashes := make([]*redis.MapStringStringCmd, len(zs))
	conns := make([]*redis.IntCmd, len(zs))
	waiting := make([]*redis.IntCmd, len(zs))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, z := range zs {
			name, _ := z.Member.(string)
			hashes[i] = p.HGetAll(ctx, DestSuspendKey(name))
			later := strconv.FormatInt(now.UnixMilli()+1, 10)
			conns[i] = p.ZCount(ctx, DestConnsKey(name), later, "+inf")
			waiting[i] = p.ZCount(ctx, DestWaitingKey(name), later, "+inf")
		}
		return nil
	}); err != nil {
		return nil, err
	}
	out := make([]DestinationState, 0, len(zs))
	for i, z := range zs {
		name, _ := z.Member.(string)
		d := DestinationState{Name: name, LastLimited: time.UnixMilli(int64(z.Score)).UTC(), Connections: int(conns[i].Val()),
			Waiting: int(waiting[i].Val())}
		h := hashes[i].Val()
		if until, _ := strconv.ParseInt(h["until"], 10, 64); until > now.UnixMilli() {
			t := time.UnixMilli(until).UTC()
			d.SuspendedUntil = &t
		}
		d.Level, _ = strconv.Atoi(h["level"])
		d.Reason = h["reason"]
		out = append(out, d)
	}
	return out, nil
}
