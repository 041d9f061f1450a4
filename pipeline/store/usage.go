package store

import (
	"context"
	"errors"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// fieldMonthlyLimit is the field of an account's hash that holds its own
// monthly email limit; the admit script (pipeline/ratelimit.go) reads it.
const fieldMonthlyLimit = "monthlyLimit"

// SetMonthlyLimit sets an account's own monthly email limit; 0 removes it
// (the configured default applies again).
func (s *Store) SetMonthlyLimit(ctx context.Context, accountID string, limit int64) error {
	if limit == 0 {
		return s.rdb.HDel(ctx, AccountKey(accountID), fieldMonthlyLimit).Err()
	}
	return s.rdb.HSet(ctx, AccountKey(accountID), fieldMonthlyLimit, limit).Err()
}

// Usage returns the emails an account sent in month (2006-01) and its own
// monthly limit (0: none, the default applies).
func (s *Store) Usage(ctx context.Context, accountID, month string) (used, ownLimit int64, err error) {
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Get(ctx, UsageKey(accountID, month))
		p.HGet(ctx, AccountKey(accountID), fieldMonthlyLimit)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, 0, err
	}
	used, _ = strconv.ParseInt(cmds[0].(*redis.StringCmd).Val(), 10, 64)
	ownLimit, _ = strconv.ParseInt(cmds[1].(*redis.StringCmd).Val(), 10, 64)
	return used, ownLimit, nil
}
