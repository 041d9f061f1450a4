package store

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// ScannedEmail is an entry of an account's email index with its record
// (nil if the record is gone).
type ScannedEmail struct {
	ID      string
	Created int64 // the index score: creation time in ms
	Email   *Email
}

// ScanEmails returns up to count entries of an email index with a score
// between minMs and maxMs (inclusive), newest first, skipping the first
// skip entries, with their records. index is AccountEmailsKey,
// AccountSendsKey or BatchEmailsKey. Cursor pagination is built on it by
// the pipeline: (maxMs, skip) is where the previous page stopped.
func (s *Store) ScanEmails(ctx context.Context, index string, maxMs, minMs int64, skip, count int) ([]ScannedEmail, error) {
	if s.retention.Records > 0 {
		// The index outlives the records it points to: trim, here where it
		// is read, what can no longer have a record (scheduled mail can be
		// finished up to 30 days after it was created).
		cutoff := s.now().Add(-s.retention.Records - 31*24*time.Hour).UnixMilli()
		if err := s.rdb.ZRemRangeByScore(ctx, index, "-inf", "("+strconv.FormatInt(cutoff, 10)).Err(); err != nil {
			return nil, err
		}
	}
	zs, err := s.rdb.ZRevRangeByScoreWithScores(ctx, index, &redis.ZRangeBy{
		Max: strconv.FormatInt(maxMs, 10), Min: strconv.FormatInt(minMs, 10), Offset: int64(skip), Count: int64(count),
	}).Result()
	if err != nil || len(zs) == 0 {
		return nil, err
	}
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, z := range zs {
			p.HGetAll(ctx, EmailKey(z.Member.(string)))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]ScannedEmail, len(zs))
	for i, z := range zs {
		out[i] = ScannedEmail{ID: z.Member.(string), Created: int64(z.Score)}
		if m := cmds[i].(*redis.MapStringStringCmd).Val(); len(m) > 0 {
			out[i].Email = emailFromHash(m)
		}
	}
	return out, nil
}
