package store

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// An account's reputation (pipeline/reputation): its hourly counts of
// delivered, bounced and complained mail (ReputationKey, moved by the
// events that record them), its pause (field "paused" of its record, which
// the admit script reads) and the mail held back from delivery while it is
// paused (HeldKey, and the account in HeldAccountsKey).

// reputationTTL keeps an hour's counts for the longest window (168 h) and
// the hour being counted.
const reputationTTL = 169 * time.Hour

// fieldPaused is the field of an account's record that holds its pause
// (JSON); the admit script (pipeline/ratelimit.go) refuses mail while it
// exists.
const fieldPaused = "paused"

// ReputationHour is the hour bucket of t: hours since the Unix epoch.
func ReputationHour(t time.Time) int64 { return t.Unix() / 3600 }

// Figures are an account's counts over a reputation window.
type Figures struct {
	Delivered  int64 `json:"delivered"`
	Bounced    int64 `json:"bounced"`
	Complained int64 `json:"complained"`
}

// reputationKeys are shard k's hour hashes of the window of hours hours
// ending with the hour of now.
func reputationKeys(k Shard, accountID string, now time.Time, hours int) []string {
	last := ReputationHour(now)
	keys := make([]string, hours)
	for i := range keys {
		keys[i] = ReputationKey(k, accountID, last-int64(i))
	}
	return keys
}

// ReputationWindow sums the account's counts over the window of hours
// hours ending with the hour of now, in every shard in use, in one round
// trip.
func (s *Store) ReputationWindow(ctx context.Context, accountID string, now time.Time, hours int) (Figures, error) {
	var f Figures
	var keys []string
	for _, k := range s.ShardsInUse(ctx) {
		keys = append(keys, reputationKeys(k, accountID, now, hours)...)
	}
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.HMGet(ctx, k, StatDelivered, StatBounced, StatComplained)
		}
		return nil
	})
	if err != nil {
		return f, err
	}
	for _, c := range cmds {
		vals := c.(*redis.SliceCmd).Val()
		for i, dst := range []*int64{&f.Delivered, &f.Bounced, &f.Complained} {
			if v, ok := vals[i].(string); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				*dst += n
			}
		}
	}
	return f, nil
}

// Pause is why an account's sending is paused.
type Pause struct {
	At     time.Time `json:"pausedAt"`
	Reason string    `json:"reason"` // bounce_rate, complaint_rate or manual
	// Figures and Hours are the window that caused an automatic pause.
	Figures Figures `json:"figures"`
	Hours   int     `json:"windowHours,omitempty"`
}

// PauseAccount pauses the account's sending unless it is paused already;
// it reports whether this call paused it.
func (s *Store) PauseAccount(ctx context.Context, accountID string, p Pause) (bool, error) {
	return s.rdb.HSetNX(ctx, AccountKey(accountID), fieldPaused, mustJSON(p)).Result()
}

// AccountPause returns the account's pause, nil when its sending is not
// paused.
func (s *Store) AccountPause(ctx context.Context, accountID string) (*Pause, error) {
	raw, err := s.rdb.HGet(ctx, AccountKey(accountID), fieldPaused).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var p Pause
	if err := json.Unmarshal([]byte(raw), &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// ResumeAccount lifts the account's pause and forgets the counts of the
// window of hours hours ending with the hour of now, which would pause it
// again at once; it reports whether the account was paused. The counts go
// first: a failure between the two leaves the account paused, to resume
// again.
func (s *Store) ResumeAccount(ctx context.Context, accountID string, now time.Time, hours int) (bool, error) {
	for _, k := range s.ShardsInUse(ctx) {
		if err := s.rdb.Del(ctx, reputationKeys(k, accountID, now, hours)...).Err(); err != nil {
			return false, err
		}
	}
	n, err := s.rdb.HDel(ctx, AccountKey(accountID), fieldPaused).Result()
	return n > 0, err
}

// Hold takes a queued email of a paused account off the delivery queue and
// keeps it back (HeldKey) until ReleaseHeld, in one MULTI: the email is
// never both queued and held, nor neither.
func (s *Store) Hold(ctx context.Context, e Entry, accountID string, now time.Time) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, EmailKey(e.EmailID), FieldLastError, "held back: the account's sending is paused")
		p.ZAdd(ctx, HeldKey(e.Shard, accountID), redis.Z{Score: float64(now.UnixMilli()), Member: e.EmailID})
		p.SAdd(ctx, HeldAccountsKey(e.Shard), accountID)
		p.XAck(ctx, StreamKey(e.Shard), GroupName, e.StreamID)
		p.XDel(ctx, StreamKey(e.Shard), e.StreamID)
		return nil
	})
	return err
}

// releaseHeld moves up to ARGV[2] of the emails held for account ARGV[1]
// (KEYS[1]) back to the delivery stream (KEYS[2]), oldest first, and
// takes the account out of the set of accounts with held mail (KEYS[3])
// once none is left. It returns how many it moved.
var releaseHeld = redis.NewScript(`
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)
for _, id in ipairs(ids) do
  redis.call('XADD', KEYS[2], '*', 'id', id)
  redis.call('ZREM', KEYS[1], id)
end
if redis.call('ZCARD', KEYS[1]) == 0 then redis.call('SREM', KEYS[3], ARGV[1]) end
return #ids
`)

// ReleaseHeld puts every email held for the account back on the delivery
// queue of its shard, count at a time, in every shard in use, and returns
// how many it moved. A shard that fails does not keep the others' mail
// back: its error is returned after them.
func (s *Store) ReleaseHeld(ctx context.Context, accountID string, count int) (int, error) {
	total := 0
	var errs []error
	for _, k := range s.ShardsInUse(ctx) {
		for {
			n, err := releaseHeld.Run(ctx, s.rdb, []string{HeldKey(k, accountID), StreamKey(k), HeldAccountsKey(k)},
				accountID, count).Int()
			total += n
			if err != nil || n < count {
				errs = append(errs, err)
				break
			}
		}
	}
	return total, errors.Join(errs...)
}

// HeldAccounts returns the accounts that have mail held back in any shard
// in use (each once); a shard that cannot be read is left out, its error
// returned with the others' accounts.
func (s *Store) HeldAccounts(ctx context.Context) ([]string, error) {
	var out []string
	var errs []error
	for _, k := range s.ShardsInUse(ctx) {
		ids, err := s.rdb.SMembers(ctx, HeldAccountsKey(k)).Result()
		errs = append(errs, err)
		for _, id := range ids {
			if !slices.Contains(out, id) {
				out = append(out, id)
			}
		}
	}
	return out, errors.Join(errs...)
}

// HeldCount returns how many of the account's emails are held back, in
// every shard in use.
func (s *Store) HeldCount(ctx context.Context, accountID string) (int64, error) {
	var total int64
	for _, k := range s.ShardsInUse(ctx) {
		n, err := s.rdb.ZCard(ctx, HeldKey(k, accountID)).Result()
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

// RecordAccountEvent adds an account event (EmailID empty) to the event
// streams: GET /v1/events lists it and the webhook dispatcher sends it.
func (s *Store) RecordAccountEvent(ctx context.Context, ev *Event) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		appendToStreams(ctx, p, ev, mustJSON(ev))
		return nil
	})
	return err
}
