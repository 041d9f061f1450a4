package store

import "context"

// BodyLen returns the size in bytes of the email's stored MIME (0 when there
// is none), so that a delivery worker can reserve memory for it before it
// reads it.
func (s *Store) BodyLen(ctx context.Context, id string) (int64, error) {
	return s.rdb.StrLen(ctx, BodyKey(id)).Result()
}
