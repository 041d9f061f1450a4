package store

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// Analytics counters. Every event moves its counters in the MULTI that
// records it (appendEvent), so a count never disagrees with the events, and
// a query reads one hash per day whatever the volume. Each account has one
// hash per UTC day (StatsKey) with, for every counter name c:
//
//	c                 the account's total
//	d:<domain>:c      mail from that sending domain
//	t:<tag>:c         mail with that tag (the first maxStatTags tags)
//
// Counter names never contain ':', so the fields cannot collide. Test-mode
// mail is not counted. Hashes expire statsTTL after their last change.

// Counter names.
const (
	StatSent               = "sent"
	StatDelivered          = "delivered"
	StatDeferred           = "deferred"
	StatBounced            = "bounced"
	StatFailed             = "failed"
	StatComplained         = "complained"
	StatOpens              = "opens"              // every counted open (not bot-filtered)
	StatUniqueOpens        = "uniqueOpens"        // first open of an email
	StatProxiedUniqueOpens = "proxiedUniqueOpens" // first open through an image proxy
	StatMachineUniqueOpens = "machineUniqueOpens" // first open by Apple Mail Privacy Protection
	StatClicks             = "clicks"             // every counted click
	StatUniqueClicks       = "uniqueClicks"       // first click of an email
	StatBotOpens           = "botFilteredOpens"
	StatBotClicks          = "botFilteredClicks"
)

const (
	statsTTL    = 400 * 24 * time.Hour
	maxStatTags = 10
)

// statCounters returns the counters ev moves.
func statCounters(ev *Event) []string {
	switch ev.Type {
	case "sent", "delivered", "deferred", "bounced", "failed", "complained":
		return []string{ev.Type}
	case "opened":
		if ev.Data[DataBotFiltered] == "true" {
			return []string{StatBotOpens}
		}
		c := []string{StatOpens}
		if ev.Data[DataFirst] == "true" {
			c = append(c, StatUniqueOpens)
			if ev.Data[DataProxied] == "true" {
				c = append(c, StatProxiedUniqueOpens)
			}
			if ev.Data[DataMachineOpen] == "apple_mpp" {
				c = append(c, StatMachineUniqueOpens)
			}
		}
		return c
	case "clicked":
		if ev.Data[DataBotFiltered] == "true" {
			return []string{StatBotClicks}
		}
		c := []string{StatClicks}
		if ev.Data[DataFirst] == "true" {
			c = append(c, StatUniqueClicks)
		}
		return c
	}
	return nil
}

// countScript increments the counters ARGV[3..] in the day's hash KEYS[2]
// for the email KEYS[1]: the totals and its domain's and first ARGV[2]
// tags' fields, and sets the hash to expire in ARGV[1] seconds. It
// must never fail (a failed command in the MULTI would fail the event's
// recording for its caller), so it reads defensively. Both keys are in {q}.
const countScript = `
local m = redis.call('HMGET', KEYS[1], 'mode', 'fromAddress', 'tags')
if m[1] == 'test' then return 0 end
local domain = ''
if type(m[2]) == 'string' then
  domain = string.lower(string.match(m[2], '@([^@]*)$') or '')
end
local tags = {}
if type(m[3]) == 'string' then
  local ok, t = pcall(cjson.decode, m[3])
  if ok and type(t) == 'table' then tags = t end
end
for i = 3, #ARGV do
  local c = ARGV[i]
  redis.call('HINCRBY', KEYS[2], c, 1)
  if domain ~= '' then redis.call('HINCRBY', KEYS[2], 'd:' .. domain .. ':' .. c, 1) end
  for j, tag in ipairs(tags) do
    if j > tonumber(ARGV[2]) then break end
    if type(tag) == 'string' then redis.call('HINCRBY', KEYS[2], 't:' .. tag .. ':' .. c, 1) end
  end
end
redis.call('EXPIRE', KEYS[2], ARGV[1])
return 1
`

// countEvent queues the counter increments of ev on p (inside appendEvent's
// MULTI).
func countEvent(ctx context.Context, p redis.Pipeliner, ev *Event) {
	if ev.AccountID == "" || ev.EmailID == "" {
		return
	}
	names := statCounters(ev)
	if len(names) == 0 {
		return
	}
	args := make([]any, 0, len(names)+2)
	args = append(args, int64(statsTTL/time.Second), maxStatTags)
	for _, n := range names {
		args = append(args, n)
	}
	p.Eval(ctx, countScript, []string{EmailKey(ev.EmailID), StatsKey(ev.AccountID, StatsDay(ev.Timestamp))}, args...)
}

// StatsDay is the day bucket of t: its UTC date.
func StatsDay(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// Stats returns the counter hashes of the account for each day, in order
// (an empty map for a day without events), in one round trip.
func (s *Store) Stats(ctx context.Context, accountID string, days []string) ([]map[string]string, error) {
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, d := range days {
			p.HGetAll(ctx, StatsKey(accountID, d))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]map[string]string, len(cmds))
	for i, c := range cmds {
		out[i] = c.(*redis.MapStringStringCmd).Val()
	}
	return out, nil
}
