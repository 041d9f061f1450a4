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

// AccountEvents returns up to count entries of the account's event
// streams older than the event before (a StreamEvent.ID; "" for the
// newest), newest first: the streams of every shard in use, merged by
// stream id (time), then by shard, both descending. Two shards' entries
// can share a stream id; StreamEvent.ID tells them apart, and a page that
// ends on one of them goes on with the other.
func (s *Store) AccountEvents(ctx context.Context, accountID, before string, count int) ([]StreamEvent, error) {
	after, at := splitEventID(before)
	shards := s.ShardsInUse(ctx)
	ranges := make([]*redis.XMessageSliceCmd, len(shards))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range shards {
			start := "+"
			switch {
			case before == "":
			case k < at:
				start = after // its entries of that very id come after the one at shard at
			default:
				start = "(" + after
			}
			ranges[i] = p.XRevRangeN(ctx, AccountEventsKey(k, accountID), start, "-", int64(count))
		}
		return nil
	}); err != nil {
		return nil, err
	}
	var all []StreamEvent
	for i, r := range ranges {
		all = append(all, streamEventsIn(shards[i], r.Val())...)
	}
	slices.SortStableFunc(all, func(a, b StreamEvent) int {
		if c := compareStreamIDs(a.StreamID, b.StreamID); c != 0 {
			return -c
		}
		return -cmp.Compare(a.Shard, b.Shard)
	})
	return all[:min(len(all), count)], nil
}

// ID is the id of an event as the API shows it: its stream id, and
// for shard k ≥ 1 "-q" and k (as NewIDIn): two shards' streams can give
// one id to two events.
func (se StreamEvent) ID() string {
	if se.Shard == 0 {
		return se.StreamID
	}
	return se.StreamID + shardSuffix + strconv.Itoa(int(se.Shard))
}

// splitEventID returns the stream id and the shard of a StreamEvent.ID.
func splitEventID(id string) (string, Shard) {
	k := ShardOf(id)
	if k == 0 {
		return id, 0
	}
	return id[:strings.LastIndex(id, shardSuffix)], k
}

// compareStreamIDs orders two stream ids (ms-seq) as Redis does.
func compareStreamIDs(a, b string) int {
	am, as, _ := strings.Cut(a, "-")
	bm, bs, _ := strings.Cut(b, "-")
	if c := cmp.Compare(len(am), len(bm)); c != 0 {
		return c
	}
	if c := cmp.Compare(am, bm); c != 0 {
		return c
	}
	if c := cmp.Compare(len(as), len(bs)); c != 0 {
		return c
	}
	return cmp.Compare(as, bs)
}

// StreamIDTime returns the time a stream id was assigned (its milliseconds part).
func StreamIDTime(id string) time.Time {
	var ms int64
	for i := 0; i < len(id) && id[i] >= '0' && id[i] <= '9'; i++ {
		ms = ms*10 + int64(id[i]-'0')
	}
	return time.UnixMilli(ms)
}
