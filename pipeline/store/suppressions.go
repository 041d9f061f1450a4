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
// is "" or "0" for the first page, and next is "" after the last. Pages
// hold about count entries; an entry may appear twice if the list changes.
func (s *Store) ListSuppressions(ctx context.Context, accountID string, cursor uint64, count int) ([]Suppression, uint64, error) {
	kv, next, err := s.rdb.HScan(ctx, SuppressionsKey(accountID), cursor, "", int64(count)).Result()
	if err != nil {
		return nil, 0, err
	}
	out := make([]Suppression, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		var sp Suppression
		if json.Unmarshal([]byte(kv[i+1]), &sp) != nil {
			sp = Suppression{Address: kv[i]}
		}
		out = append(out, sp)
	}
	return out, next, nil
}
