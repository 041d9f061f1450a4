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
// rate and to its monthly count, in one round trip. The rate is the
// generic cell rate algorithm: KEYS[1] holds the theoretical arrival time
// (TAT) of the next send in ms, and a request of cost sends is allowed when
// it would not move the TAT more than the burst tolerance past now. KEYS[3]
// counts the month's sends; the limit is the account's own (field
// monthlyLimit of its record, KEYS[4]) or the default. An account whose
// record has a pause (field paused, pipeline/reputation) sends nothing.
// ARGV: now, the interval and the tolerance in ms, the burst (the most one
// request is charged), the default monthly limit (0: none), the count's
// TTL in s, the mode (admitLook, admitCharge, admitCheck), then the
// recipients in lower case.
// It returns {paused, wait, limit, s1, s2, ...}: si is 1 when recipient i
// is suppressed; paused is 1 when the account is paused; wait is 0 when
// the others' sends are charged (or there are none: nothing is charged),
// else the ms to wait; limit is the monthly limit when it refused them. A
// refusal charges nothing.
var admitScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[4], 'paused') == 1 then return {1, 0, 0} end -- store.fieldPaused
local suppressed = redis.call('HMGET', KEYS[2], unpack(ARGV, 8))
local out = {0, 0, 0}
local cost = 0
for i = 1, #suppressed do
  if suppressed[i] then out[i + 3] = 1 else out[i + 3] = 0; cost = cost + 1 end
end
if cost == 0 or ARGV[7] == '0' then return out end
local limit = tonumber(redis.call('HGET', KEYS[4], 'monthlyLimit') or ARGV[5]) -- store.fieldMonthlyLimit
local used = tonumber(redis.call('GET', KEYS[3]) or 0)
if limit > 0 and used + cost > limit then
  out[3] = limit
  return out
end
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local tolerance = tonumber(ARGV[3])
local charged = math.min(cost, tonumber(ARGV[4]))
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local newtat = tat + interval * charged
local wait = newtat - tolerance - now
if wait > 0 then
  out[2] = math.ceil(wait)
  return out
end
if ARGV[7] == '2' then return out end -- admitCheck: within the limits, nothing charged
redis.call('SET', KEYS[1], tostring(newtat), 'PX', math.ceil(newtat - now) + 1000)
redis.call('INCRBY', KEYS[3], cost)
redis.call('EXPIRE', KEYS[3], ARGV[6])
return out
`)

// RateLimit is an account's sustained rate and burst, and the monthly
// email limit of an account that has none of its own.
type RateLimit struct {
	PerSecond float64
	Burst     int
	Monthly   int64 // 0: none
}

// Month is the calendar month (UTC) whose count a send at t charges.
func Month(t time.Time) string { return t.UTC().Format("2006-01") }

// usageTTL keeps a month's count for the month after it (GET /v1/usage
// of the month before), then lets it go.
const usageTTL = 62 * 24 * time.Hour

// The modes of admitScript (its ARGV[7]).
const (
	// admitLook looks only: the suppressions and the pause; the limits are
	// not checked and nothing is written (a preview).
	admitLook = 0
	// admitCharge checks everything and charges the rate and the month.
	admitCharge = 1
	// admitCheck checks everything as admitCharge does but charges and
	// writes nothing: what a send would be answered now (CheckAdmission).
	admitCheck = 2
)

// admit returns which of rcpts the account has suppressed and charges the
// sends to the others to its rate and its month: ErrAccountPaused,
// ErrRateLimited or ErrMonthlyLimit (nothing charged) when it is paused or
// they are over either. Without charge it only looks: which are
// suppressed, and ErrAccountPaused (a preview).
func (l RateLimit) admit(ctx context.Context, rdb redis.UniversalClient, accountID string, rcpts []string, now time.Time, charge bool) ([]bool, error) {
	mode := admitLook
	if charge {
		mode = admitCharge
	}
	return l.run(ctx, rdb, accountID, rcpts, now, mode)
}

// run runs admitScript in mode.
func (l RateLimit) run(ctx context.Context, rdb redis.UniversalClient, accountID string, rcpts []string, now time.Time, mode int) ([]bool, error) {
	interval := 1000 / l.PerSecond
	args := make([]any, 0, 7+len(rcpts))
	args = append(args, now.UnixMilli(),
		strconv.FormatFloat(interval, 'f', 3, 64),
		strconv.FormatFloat(interval*float64(l.Burst), 'f', 3, 64),
		l.Burst, // a request larger than the burst could never pass: it is charged as the burst
		l.Monthly, int64(usageTTL/time.Second), mode)
	for _, r := range rcpts {
		args = append(args, strings.ToLower(r))
	}
	keys := []string{store.RateKey(accountID), store.SuppressionsKey(accountID),
		store.UsageKey(accountID, Month(now)), store.AccountKey(accountID)}
	res, err := admitScript.Run(ctx, rdb, keys, args...).Int64Slice()
	if err != nil {
		return nil, StorageError(err)
	}
	if res[0] == 1 {
		return nil, ErrAccountPaused
	}
	if len(res) != len(rcpts)+3 {
		return nil, StorageError(fmt.Errorf("admit script: %d results for %d recipients", len(res), len(rcpts)))
	}
	suppressed := make([]bool, len(rcpts))
	for i := range rcpts {
		suppressed[i] = res[i+3] == 1
	}
	switch {
	case res[2] > 0:
		next := time.Date(now.UTC().Year(), now.UTC().Month()+1, 1, 0, 0, 0, 0, time.UTC)
		return nil, ErrMonthlyLimit.Withf("the account's monthly limit of %d emails is reached; it resets on %s",
			res[2], next.Format("2006-01-02")).After(next.Sub(now))
	case res[1] > 0:
		return nil, ErrRateLimited.After(time.Duration(res[1]) * time.Millisecond)
	}
	return suppressed, nil
}

// giveBackScript undoes what admitScript charged for a message that was
// then not stored: ARGV[2] ms off the account's TAT (KEYS[1]; a TAT that
// falls to now or before is as good as none) and ARGV[3] sends off the
// month's count (KEYS[2], never below 0). ARGV[1] is now in ms. GCRA
// charges add up, so taking one back leaves the others as they were.
var giveBackScript = redis.NewScript(`
local now = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or now) - tonumber(ARGV[2])
if tat > now then
  redis.call('SET', KEYS[1], tostring(tat), 'PX', math.ceil(tat - now) + 1000)
else
  redis.call('DEL', KEYS[1])
end
local used = tonumber(redis.call('GET', KEYS[2]) or 0)
if used > 0 then redis.call('DECRBY', KEYS[2], math.min(used, tonumber(ARGV[3]))) end
return 0
`)

// charge is what admitScript charged an account for one admission.
type charge struct {
	accountID string
	month     string // of the usage count charged (Month)
	sends     int64  // recipients charged to the month
	rateMs    float64
}

// chargeOf is what admitScript charged for rcpts, of which suppressed
// were not charged: nothing when they all were.
func (l RateLimit) chargeOf(accountID string, now time.Time, suppressed []bool) charge {
	c := charge{accountID: accountID, month: Month(now)}
	for _, s := range suppressed {
		if !s {
			c.sends++
		}
	}
	// As admitScript computes it: the interval as sent, times the sends
	// up to the burst.
	interval, _ := strconv.ParseFloat(strconv.FormatFloat(1000/l.PerSecond, 'f', 3, 64), 64)
	c.rateMs = interval * float64(min(c.sends, int64(l.Burst)))
	return c
}

// giveBack takes c back from its account's rate and month.
func (l RateLimit) giveBack(ctx context.Context, rdb redis.UniversalClient, c charge, now time.Time) error {
	if c.sends == 0 {
		return nil
	}
	keys := []string{store.RateKey(c.accountID), store.UsageKey(c.accountID, c.month)}
	return giveBackScript.Run(ctx, rdb, keys, now.UnixMilli(),
		strconv.FormatFloat(c.rateMs, 'f', 3, 64), c.sends).Err()
}
