package store

import (
	"context"
	"time"
)

// AccountEvents returns up to count entries of the account's event stream
// older than the stream id before ("" for the newest), newest first.
func (s *Store) AccountEvents(ctx context.Context, accountID, before string, count int) ([]StreamEvent, error) {
	start := "+"
	if before != "" {
		start = "(" + before
	}
	msgs, err := s.rdb.XRevRangeN(ctx, AccountEventsKey(accountID), start, "-", int64(count)).Result()
	if err != nil {
		return nil, err
	}
	return streamEvents(msgs), nil
}

// StreamIDTime returns the time a stream id was assigned (its milliseconds part).
func StreamIDTime(id string) time.Time {
	var ms int64
	for i := 0; i < len(id) && id[i] >= '0' && id[i] <= '9'; i++ {
		ms = ms*10 + int64(id[i]-'0')
	}
	return time.UnixMilli(ms)
}
