package pipeline

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// gcra is the generic cell rate algorithm in one atomic script: the key holds
// the theoretical arrival time (TAT) of the next send in ms. A request of
// `cost` sends is allowed when it would not move the TAT more than the burst
// tolerance past now. It returns 0 when allowed, else the ms to wait.
var gcra = redis.NewScript(`
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local tolerance = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local newtat = tat + interval * cost
local wait = newtat - tolerance - now
if wait > 0 then return math.ceil(wait) end
redis.call('SET', KEYS[1], tostring(newtat), 'PX', math.ceil(newtat - now) + 1000)
return 0
`)

// RateLimit is an account's sustained rate and burst.
type RateLimit struct {
	PerSecond float64
	Burst     int
}

// allow charges cost sends to the account, or returns ErrRateLimited.
func (l RateLimit) allow(ctx context.Context, rdb redis.UniversalClient, accountID string, cost int, now time.Time) error {
	cost = min(cost, l.Burst) // a request larger than the burst could never pass
	interval := 1000 / l.PerSecond
	wait, err := gcra.Run(ctx, rdb, []string{store.RateKey(accountID)},
		now.UnixMilli(),
		strconv.FormatFloat(interval, 'f', 3, 64),
		strconv.FormatFloat(interval*float64(l.Burst), 'f', 3, 64),
		cost).Int64()
	if err != nil {
		return storageError(err)
	}
	if wait > 0 {
		return ErrRateLimited(time.Duration(wait) * time.Millisecond)
	}
	return nil
}
