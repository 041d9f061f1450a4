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

// cancelScheduled cancels every email of KEYS[2..] (ids in ARGV[2..]) if all
// are still scheduled and still in the schedule KEYS[1]; ARGV[1] is the time.
// It is atomic against releaseDue: either the ZREM here succeeds and the
// emails are never released, or they were released and nothing changes.
var cancelScheduled = redis.NewScript(`
for i = 2, #KEYS do
  local st = redis.call('HGET', KEYS[i], 'status')
  if st == 'cancelled' then
    return {'cancelled'}
  end
  if st ~= 'scheduled' then
    return {'status', ARGV[i], st or ''}
  end
  if not redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    return {'released', ARGV[i], st}
  end
end
for i = 2, #KEYS do
  redis.call('ZREM', KEYS[1], ARGV[i])
  redis.call('HSET', KEYS[i], 'status', 'cancelled', 'cancelledAt', ARGV[1])
end
return {'cancelled'}
`)

// CancelResult says what CancelScheduled did.
type CancelResult struct {
	Cancelled bool
	// When not cancelled: the email that prevented it and its status
	// ("scheduled" when it has been released for sending already).
	EmailID string
	Status  string
}

// CancelScheduled cancels the emails ids (one submission's group) in one
// script: all of them, or none if any has left the schedule.
func (s *Store) CancelScheduled(ctx context.Context, ids []string, at time.Time) (CancelResult, error) {
	keys := make([]string, 0, len(ids)+1)
	args := make([]any, 0, len(ids)+1)
	keys = append(keys, RetryKey())
	args = append(args, FormatTime(at))
	for _, id := range ids {
		keys = append(keys, EmailKey(id))
		args = append(args, id)
	}
	res, err := cancelScheduled.Run(ctx, s.rdb, keys, args...).StringSlice()
	if err != nil {
		return CancelResult{}, err
	}
	if len(res) == 0 || res[0] == "cancelled" {
		return CancelResult{Cancelled: true}, nil
	}
	r := CancelResult{}
	if len(res) > 1 {
		r.EmailID = res[1]
	}
	if len(res) > 2 {
		r.Status = res[2]
	}
	return r, nil
}
