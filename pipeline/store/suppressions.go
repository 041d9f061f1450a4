package store

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Suppression returns the entry of addr on the account's list; ErrNotFound if none.
func (s *Store) Suppression(ctx context.Context, accountID, addr string) (*Suppression, error) {
	raw, err := s.rdb.HGet(ctx, SuppressionsKey(accountID), strings.ToLower(addr)).Result()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	var sp Suppression
	if err := json.Unmarshal([]byte(raw), &sp); err != nil {
		sp = Suppression{Address: strings.ToLower(addr)}
	}
	return &sp, nil
}

// Unsuppress removes addr from the account's list; ErrNotFound if it was not on it.
func (s *Store) Unsuppress(ctx context.Context, accountID, addr string) error {
	n, err := s.rdb.HDel(ctx, SuppressionsKey(accountID), strings.ToLower(addr)).Result()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// ListSuppressions returns a page of the account's list with HSCAN: cursor
// is 0 for the first page, and next is 0 after the last. Pages hold about
// count entries; an entry may appear twice if the list changes.
//
// With match (a glob, SuppressionGlob), only the addresses it matches: the
// scan goes on, up to maxSearchRounds HSCAN calls of count entries each,
// until it has count of them, so a search reads a bounded part of the
// list per request and its page may hold fewer (even none) with a next
// cursor.
func (s *Store) ListSuppressions(ctx context.Context, accountID, match string, cursor uint64, count int) ([]Suppression, uint64, error) {
	var out []Suppression
	for round := 0; ; round++ {
		kv, next, err := s.rdb.HScan(ctx, SuppressionsKey(accountID), cursor, match, int64(count)).Result()
		if err != nil {
			return nil, 0, err
		}
		for i := 0; i+1 < len(kv); i += 2 {
			var sp Suppression
			if json.Unmarshal([]byte(kv[i+1]), &sp) != nil {
				sp = Suppression{Address: kv[i]}
			}
			out = append(out, sp)
		}
		cursor = next
		if match == "" || next == 0 || len(out) >= count || round+1 >= maxSearchRounds {
			return out, next, nil
		}
	}
}

// maxSearchRounds bounds the HSCAN calls of one search of a suppression
// list (ListSuppressions with a match).
const maxSearchRounds = 10

// SuppressionGlob is the HSCAN pattern of the addresses that contain q
// (or begin with it, with prefix), case-insensitively: addresses are kept
// in lower case, and q's glob characters are escaped.
func SuppressionGlob(q string, prefix bool) string {
	var b strings.Builder
	if !prefix {
		b.WriteByte('*')
	}
	for _, r := range strings.ToLower(q) {
		if strings.ContainsRune(`*?[]\^`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('*')
	return b.String()
}
