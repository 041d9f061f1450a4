package pipeline

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// admitScript checks a submission's recipients against the account's
// suppression list (KEYS[2]) and charges the sends to the others to its
// rate, in one round trip. The rate is the generic cell rate algorithm:
// KEYS[1] holds the theoretical arrival time (TAT) of the next send in ms,
// and a request of cost sends is allowed when it would not move the TAT
// more than the burst tolerance past now. ARGV: now, the interval and the
// tolerance in ms, the burst (the most one request is charged), then the
// recipients in lower case. It returns {wait, s1, s2, ...}: si is 1 when
// recipient i is suppressed; wait is 0 when the others' sends are charged
// (or there are none: nothing is charged), else the ms to wait, and then
// nothing is charged.
var admitScript = redis.NewScript(`
local suppressed = redis.call('HMGET', KEYS[2], unpack(ARGV, 5))
local out = {0}
local cost = 0
for i = 1, #suppressed do
  if suppressed[i] then out[i + 1] = 1 else out[i + 1] = 0; cost = cost + 1 end
end
if cost == 0 then return out end
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local tolerance = tonumber(ARGV[3])
cost = math.min(cost, tonumber(ARGV[4]))
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local newtat = tat + interval * cost
local wait = newtat - tolerance - now
if wait > 0 then
  out[1] = math.ceil(wait)
  return out
end
redis.call('SET', KEYS[1], tostring(newtat), 'PX', math.ceil(newtat - now) + 1000)
return out
`)

// RateLimit is an account's sustained rate and burst.
type RateLimit struct {
	PerSecond float64
	Burst     int
}

// admit returns which of rcpts the account has suppressed and charges the
// sends to the others to its rate: ErrRateLimited (nothing charged) when
// they are over the rate.
func (l RateLimit) admit(ctx context.Context, rdb redis.UniversalClient, accountID string, rcpts []string, now time.Time) ([]bool, error) {
	interval := 1000 / l.PerSecond
	args := make([]any, 0, 4+len(rcpts))
	args = append(args, now.UnixMilli(),
		strconv.FormatFloat(interval, 'f', 3, 64),
		strconv.FormatFloat(interval*float64(l.Burst), 'f', 3, 64),
		l.Burst) // a request larger than the burst could never pass: it is charged as the burst
	for _, r := range rcpts {
		args = append(args, strings.ToLower(r))
	}
	res, err := admitScript.Run(ctx, rdb, []string{store.RateKey(accountID), store.SuppressionsKey(accountID)}, args...).Int64Slice()
	if err != nil {
		return nil, StorageError(err)
	}
	if len(res) != len(rcpts)+1 {
		return nil, StorageError(fmt.Errorf("admit script: %d results for %d recipients", len(res), len(rcpts)))
	}
	suppressed := make([]bool, len(rcpts))
	for i := range rcpts {
		suppressed[i] = res[i+1] == 1
	}
	if res[0] > 0 {
		return nil, ErrRateLimited.After(time.Duration(res[0]) * time.Millisecond)
	}
	return suppressed, nil
}
