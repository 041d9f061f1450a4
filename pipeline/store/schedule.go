package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// Scheduled emails wait in the retry schedule (RetryKey) with their due time
// as score; ReleaseDue moves them to the stream in one script, so that a
// scheduled email is released once however many processes run it, and
// survives restarts like any Redis data.

// ScheduleGroup returns the ids of the emails submitted together with id
// (id alone when it was the only one). The group is written once at submit.
func (s *Store) ScheduleGroup(ctx context.Context, id string) ([]string, error) {
	raw, err := s.rdb.HGet(ctx, EmailKey(id), fieldGroup).Result()
	if errors.Is(err, redis.Nil) {
		return []string{id}, nil
	}
	if err != nil {
		return nil, err
	}
	var ids []string
	if err := json.Unmarshal([]byte(raw), &ids); err != nil || len(ids) == 0 {
		return []string{id}, nil
	}
	return ids, nil
}

// cancelScheduled cancels the emails whose ids are ARGV[4..] if all are
// still scheduled and still in the schedule KEYS[1]. KEYS[2..] hold, for
// each email in turn, its record, body, events, message and message's
// count keys (release, in releaseLua); ARGV[1] is the time, ARGV[2] and
// ARGV[3] the seconds its content and records are then kept (0: forever).
// It is atomic against releaseDue: either the ZREM here succeeds and the
// emails are never released, or they were released and nothing changes.
var cancelScheduled = redis.NewScript(releaseLua + `
local n = #ARGV - 3
for i = 1, n do
  local st = redis.call('HGET', KEYS[5*i - 3], 'status')
  if st == 'cancelled' then
    return {'cancelled'}
  end
  if st ~= 'scheduled' then
    return {'status', ARGV[3 + i], st or ''}
  end
  if not redis.call('ZSCORE', KEYS[1], ARGV[3 + i]) then
    return {'released', ARGV[3 + i], st}
  end
end
for i = 1, n do
  local record, body, events = KEYS[5*i - 3], KEYS[5*i - 2], KEYS[5*i - 1]
  redis.call('ZREM', KEYS[1], ARGV[3 + i])
  redis.call('HSET', record, 'status', 'cancelled', 'cancelledAt', ARGV[1])
  release(record, body, KEYS[5*i], KEYS[5*i + 1], ARGV[2])
  if tonumber(ARGV[3]) > 0 then
    redis.call('EXPIRE', record, ARGV[3])
    redis.call('EXPIRE', events, ARGV[3])
  end
end
return {'cancelled'}
`)

// CancelResult says what CancelScheduled did.
type CancelResult struct {
	Cancelled bool
	// When not cancelled: the email that prevented it and its status
	// ("scheduled" when it has been released for sending already).
	EmailID string
	Status  Status
}

// CancelScheduled cancels the emails ids (one submission's group) in one
// script: all of them, or none if any has left the schedule. Cancelled
// emails are finished: they expire like delivered ones.
func (s *Store) CancelScheduled(ctx context.Context, ids []string, at time.Time) (CancelResult, error) {
	// The message each email names never changes: read first, its keys
	// go to the script.
	messages := make([]*redis.StringCmd, len(ids))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			messages[i] = p.HGet(ctx, EmailKey(id), "message")
		}
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return CancelResult{}, err
	}
	keys := make([]string, 0, 5*len(ids)+1)
	args := make([]any, 0, len(ids)+3)
	var k Shard // a group is in one shard, its emails'
	if len(ids) > 0 {
		k = ShardOf(ids[0])
	}
	keys = append(keys, RetryKey(k))
	args = append(args, FormatTime(at), int64(s.retention.Content.Seconds()), int64(s.retention.Records.Seconds()))
	for i, id := range ids {
		m := messages[i].Val()
		msg, refs := messageKeysOf(id, m)
		keys = append(keys, EmailKey(id), BodyKey(id), EventsKey(id), msg, refs)
		args = append(args, id)
	}
	res, err := cancelScheduled.Run(ctx, s.rdb, keys, args...).StringSlice()
	if err != nil {
		return CancelResult{}, err
	}
	if len(res) == 0 || res[0] == string(StatusCancelled) {
		return CancelResult{Cancelled: true}, nil
	}
	r := CancelResult{}
	if len(res) > 1 {
		r.EmailID = res[1]
	}
	if len(res) > 2 {
		r.Status = Status(res[2])
	}
	return r, nil
}
