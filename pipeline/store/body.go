package store

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// EmailWithBodyLen is Email together with the size in bytes of the email's
// stored MIME (0 when there is none), in one round trip, so that a delivery
// worker can reserve memory for the body before it reads it: its message's
// (Email.MessageLen, recorded with it), or its own body's.
func (s *Store) EmailWithBodyLen(ctx context.Context, id string) (*Email, int64, error) {
	var fields *redis.MapStringStringCmd
	var size *redis.IntCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		fields = p.HGetAll(ctx, EmailKey(id))
		size = p.StrLen(ctx, BodyKey(id))
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	m := fields.Val()
	if len(m) == 0 {
		return nil, 0, ErrNotFound
	}
	e := emailFromHash(m)
	if e.Message != "" {
		return e, e.MessageLen, nil
	}
	return e, size.Val(), nil
}
