package store

import (
	"cmp"
	"context"
	"slices"
	"strconv"
	"strings"
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

// EmailIndexes returns the account's email indexes (AccountEmailsKey, or
// AccountSendsKey when sends) of every shard in use, for ScanEmails.
func (s *Store) EmailIndexes(ctx context.Context, accountID string, sends bool) []string {
	var out []string
	for _, k := range s.ShardsInUse(ctx) {
		if sends {
			out = append(out, AccountSendsKey(k, accountID))
		} else {
			out = append(out, AccountEmailsKey(k, accountID))
		}
	}
	return out
}

// ScanEmails returns up to count entries of email indexes with a score
// between minMs and maxMs (inclusive), newest first, skipping the first
// skip entries, with their records. indexes are EmailIndexes (one per
// shard, read as one: merged by score, then member, both descending, the
// order of one sorted set) or a BatchEmailsKey. Cursor pagination is
// built on it by the pipeline: (maxMs, skip) is where the previous page
// stopped.
func (s *Store) ScanEmails(ctx context.Context, indexes []string, maxMs, minMs int64, skip, count int) ([]ScannedEmail, error) {
	if s.retention.Records > 0 {
		// The index outlives the records it points to: trim, here where it
		// is read, what can no longer have a record (scheduled mail can be
		// finished up to 30 days after it was created).
		cutoff := s.now().Add(-s.retention.Records - 31*24*time.Hour).UnixMilli()
		if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, index := range indexes {
				p.ZRemRangeByScore(ctx, index, "-inf", "("+strconv.FormatInt(cutoff, 10))
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	by := &redis.ZRangeBy{Max: strconv.FormatInt(maxMs, 10), Min: strconv.FormatInt(minMs, 10), Offset: int64(skip), Count: int64(count)}
	if len(indexes) > 1 {
		// The skipped entries can be in any index: each gives its first
		// skip+count, and the merge skips.
		by.Offset, by.Count = 0, int64(skip+count)
	}
	ranges := make([]*redis.ZSliceCmd, len(indexes))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, index := range indexes {
			ranges[i] = p.ZRevRangeByScoreWithScores(ctx, index, by)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	var zs []redis.Z
	for _, r := range ranges {
		zs = append(zs, r.Val()...)
	}
	if len(indexes) > 1 {
		slices.SortFunc(zs, func(a, b redis.Z) int {
			if c := cmp.Compare(b.Score, a.Score); c != 0 {
				return c
			}
			return strings.Compare(b.Member.(string), a.Member.(string))
		})
		zs = zs[min(skip, len(zs)):]
		zs = zs[:min(count, len(zs))]
	}
	if len(zs) == 0 {
		return nil, nil
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
