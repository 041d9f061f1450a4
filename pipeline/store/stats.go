package store

import (
	"context"
	"strconv"
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
	// StatExpiredClicks counts clicks on links of mail whose record has
	// expired (retention.records): they redirect, but there is no email to
	// record them on.
	StatExpiredClicks = "clicksAfterExpiry"
)

const (
	statsTTL    = 400 * 24 * time.Hour
	maxStatTags = 10
)

// statCounters returns the counters ev moves.
func statCounters(ev *Event) []string {
	switch ev.Type {
	case EventSent, EventDelivered, EventDeferred, EventBounced, EventFailed, EventComplained:
		return []string{string(ev.Type)}
	case EventOpened:
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
	case EventClicked:
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

// countScript moves the counters of a batch of events. KEYS are triples:
// an email's record, its day's counter hash and its hour's reputation hash
// (ReputationKey); ARGV[1] is the day hashes' TTL in seconds, ARGV[2] how
// many tags count, ARGV[3] the reputation hashes' TTL, then for each triple
// the number of its counter names and the names. Each name moves the total
// and the email's domain's and first ARGV[2] tags' fields, summed over the
// batch so that a field gets one HINCRBY; the names the reputation guard
// reads (reputationCounters) move the hour's hash too. It must never fail
// (a failed command in the MULTI would fail the events' recording for
// their caller), so it reads defensively. All keys are in one shard.
const countScript = `
local maxTags = tonumber(ARGV[2])
local emails, sums, hashes = {}, {}, {}
local reputation = {delivered = true, bounced = true, complained = true}
local a = 4
for i = 1, #KEYS, 3 do
  local e = emails[KEYS[i]]
  if not e then
    local m = redis.call('HMGET', KEYS[i], 'mode', 'fromAddress', 'tags')
    e = {test = m[1] == 'test', domain = '', tags = {}}
    if type(m[2]) == 'string' then
      e.domain = string.lower(string.match(m[2], '@([^@]*)$') or '')
    end
    if type(m[3]) == 'string' then
      local ok, t = pcall(cjson.decode, m[3])
      if ok and type(t) == 'table' then e.tags = t end
    end
    emails[KEYS[i]] = e
  end
  local n = tonumber(ARGV[a])
  if not e.test then
    local sum = sums[KEYS[i + 1]]
    if not sum then
      sum = {}
      sums[KEYS[i + 1]] = sum
      hashes[#hashes + 1] = KEYS[i + 1]
    end
    local function add(f) sum[f] = (sum[f] or 0) + 1 end
    for j = a + 1, a + n do
      local c = ARGV[j]
      add(c)
      if reputation[c] then
        redis.call('HINCRBY', KEYS[i + 2], c, 1)
        redis.call('EXPIRE', KEYS[i + 2], ARGV[3])
      end
      if e.domain ~= '' then add('d:' .. e.domain .. ':' .. c) end
      for k, tag in ipairs(e.tags) do
        if k > maxTags then break end
        if type(tag) == 'string' then add('t:' .. tag .. ':' .. c) end
      end
    end
  end
  a = a + 1 + n
end
for _, h in ipairs(hashes) do
  for f, v in pairs(sums[h]) do redis.call('HINCRBY', h, f, v) end
  redis.call('EXPIRE', h, ARGV[1])
end
return 1
`

// countEvents queues the counter increments of evs on p (inside
// appendEvents' MULTI), in one script call.
func countEvents(ctx context.Context, p redis.Pipeliner, evs []*Event) {
	var keys []string
	args := []any{int64(statsTTL / time.Second), maxStatTags, int64(reputationTTL / time.Second)}
	for _, ev := range evs {
		if ev.AccountID == "" || ev.EmailID == "" {
			continue
		}
		names := statCounters(ev)
		if len(names) == 0 {
			continue
		}
		k := ShardOf(ev.EmailID)
		keys = append(keys, EmailKey(ev.EmailID), StatsKey(k, ev.AccountID, StatsDay(ev.Timestamp)),
			ReputationKey(k, ev.AccountID, ReputationHour(ev.Timestamp)))
		args = append(args, len(names))
		for _, n := range names {
			args = append(args, n)
		}
	}
	if len(keys) > 0 {
		p.Eval(ctx, countScript, keys, args...)
	}
}

// CountExpiredClick counts a click on a link of the account's email
// emailID whose record has expired, on the account's day in the email's
// shard (the total only: the email's domain and tags went with its
// record).
func (s *Store) CountExpiredClick(ctx context.Context, accountID, emailID string, at time.Time) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		key := StatsKey(ShardOf(emailID), accountID, StatsDay(at))
		p.HIncrBy(ctx, key, StatExpiredClicks, 1)
		p.Expire(ctx, key, statsTTL)
		return nil
	})
	return err
}

// StatsDay is the day bucket of t: its UTC date.
func StatsDay(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// Stats returns the counter hashes of the account for each day, in order
// (an empty map for a day without events), summed over the shards in use,
// in one round trip.
func (s *Store) Stats(ctx context.Context, accountID string, days []string) ([]map[string]string, error) {
	shards := s.ShardsInUse(ctx)
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range shards {
			for _, d := range days {
				p.HGetAll(ctx, StatsKey(k, accountID, d))
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]map[string]string, len(days))
	for i, c := range cmds {
		m := c.(*redis.MapStringStringCmd).Val()
		day := i % len(days)
		if out[day] == nil {
			out[day] = m
			continue
		}
		for f, v := range m {
			a, _ := strconv.ParseInt(out[day][f], 10, 64)
			b, _ := strconv.ParseInt(v, 10, 64)
			out[day][f] = strconv.FormatInt(a+b, 10)
		}
	}
	return out, nil
}
