package store

import (
	"context"
	"math"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
)

// An account's emails spread over 3 shards list as one index: every one
// of them, newest first (ties by id, as one sorted set orders them), page
// after page with the (time, skip) cursor, many sharing a millisecond;
// and its events list merged by time. With PIGEONPOST_TEST_REDIS=cluster
// each shard's keys are on their own slot, and the slot checker watches.
func TestListAcrossShards(t *testing.T) {
	rdb := testkit.RedisClient(t)
	ctx := context.Background()
	s := New(rdb, time.Now)
	s.SetShards(3)
	if err := s.RegisterShards(ctx); err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	type entry struct {
		ms int64
		id string
	}
	var want []entry
	for i := range 30 {
		k := Shard(i % 3)
		at := base.Add(time.Duration(i/4) * time.Millisecond) // 4 emails a millisecond, over the shards
		e := &Email{ID: NewIDIn("em", k), AccountID: "acct_1", KeyID: "key_1", Mode: ModeLive, Status: StatusPending,
			ToAddress: "r@example.test", CreatedAt: at}
		if err := s.PersistWith(ctx, []NewEmail{{Email: e, Body: []byte("x")}}, PersistOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := s.AddEvent(ctx, Event{Type: EventSent, Timestamp: at, EmailID: e.ID, AccountID: "acct_1"}); err != nil {
			t.Fatal(err)
		}
		want = append(want, entry{at.UnixMilli(), e.ID})
	}
	slices.SortFunc(want, func(a, b entry) int {
		if a.ms != b.ms {
			return int(b.ms - a.ms)
		}
		if a.id > b.id {
			return -1
		}
		return 1
	})

	indexes := s.EmailIndexes(ctx, "acct_1", false)
	if len(indexes) != 3 {
		t.Fatalf("%d indexes, want one per shard", len(indexes))
	}
	var got []entry
	maxMs, skip := int64(math.MaxInt64), 0
	for page := 0; page < 20; page++ {
		batch, err := s.ScanEmails(ctx, indexes, maxMs, math.MinInt64, skip, 7)
		if err != nil {
			t.Fatal(err)
		}
		if len(batch) == 0 {
			break
		}
		for _, se := range batch {
			if se.Email == nil || se.Email.ID != se.ID {
				t.Fatalf("entry %s without its record", se.ID)
			}
			got = append(got, entry{se.Created, se.ID})
			if se.Created == maxMs {
				skip++
			} else {
				maxMs, skip = se.Created, 1
			}
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("listed across shards:\n got %v\nwant %v", got, want)
	}

	var events []StreamEvent
	before := ""
	for page := 0; page < 20; page++ {
		batch, err := s.AccountEvents(ctx, "acct_1", before, 8)
		if err != nil {
			t.Fatal(err)
		}
		if len(batch) == 0 {
			break
		}
		events = append(events, batch...)
		before = batch[len(batch)-1].ID()
	}
	if len(events) != 30 {
		t.Fatalf("%d events listed, want 30", len(events))
	}
	ids := map[string]bool{}
	for _, se := range events {
		ids[se.ID()] = true
	}
	if len(ids) != 30 {
		t.Errorf("%d distinct event ids of 30 events", len(ids))
	}
	for i := 1; i < len(events); i++ {
		if compareStreamIDs(events[i-1].StreamID, events[i].StreamID) < 0 {
			t.Fatalf("events out of order at %d: %s before %s", i, events[i-1].StreamID, events[i].StreamID)
		}
	}
}

// A replay reads the account's event streams of every shard, oldest
// first, page after page, and entries of two shards with one stream id
// are both read, in shard order, whatever the page size; each carries
// the id its event has in its shard's global stream (StreamEvent.ID).
func TestAccountEventsBetweenAcrossShards(t *testing.T) {
	rdb := testkit.RedisClient(t)
	ctx := context.Background()
	s := New(rdb, time.Now)
	s.SetShards(2)
	ids := []string{"1000-0", "1000-1", "1001-0"}
	for k := range s.WriteShards() {
		for _, id := range ids {
			if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: AccountEventsKey(k, "acct_1"), ID: id,
				Values: []any{"account", "acct_1", "event", "{}", "gid", id}}).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	var got []string
	cursor := "1000"
	for page := 0; page < 10; page++ {
		batch, err := s.AccountEventsBetween(ctx, "acct_1", cursor, "1001", 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(batch) == 0 {
			break
		}
		for _, e := range batch {
			if e.EventID != e.ID() {
				t.Errorf("entry %s of shard %d has the event id %s", e.StreamID, e.Shard, e.EventID)
			}
			got = append(got, e.ID())
		}
		cursor = "(" + batch[len(batch)-1].ID()
	}
	want := []string{"1000-0", "1000-0-q1", "1000-1", "1000-1-q1", "1001-0", "1001-0-q1"}
	if !slices.Equal(got, want) {
		t.Errorf("read %v, want %v", got, want)
	}
}

// countPipelines is a go-redis hook counting the pipelines sent.
type countPipelines struct{ n atomic.Int32 }

func (c *countPipelines) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (c *countPipelines) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (c *countPipelines) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmds)
	}
}

// While the registry of shards cannot be read, its last answer stands and
// is asked for again once a second, not at each call: ShardsInUse and
// IdemShards are on the path of every idempotent submission.
func TestRegistryUnreadable(t *testing.T) {
	srv := testkit.StartRedis(t)
	if !srv.Real() {
		t.Skip("needs a redis-server to kill")
	}
	rdb := srv.Client(t)
	hook := &countPipelines{}
	rdb.AddHook(hook)
	ctx := context.Background()
	var clock atomic.Int64 // ns since the epoch
	clock.Store(time.Now().UnixNano())
	s := New(rdb, func() time.Time { return time.Unix(0, clock.Load()) })
	s.SetShards(2)
	if err := s.RegisterShards(ctx); err != nil {
		t.Fatal(err)
	}
	if got := s.ShardsInUse(ctx); len(got) != 2 {
		t.Fatalf("shards in use %v", got)
	}
	srv.Kill()
	clock.Add(int64(2 * time.Second)) // the answer read above is due to be read again
	hook.n.Store(0)
	for range 50 {
		if got := s.ShardsInUse(ctx); len(got) != 2 {
			t.Fatalf("with Redis down, shards in use %v, want the last answer", got)
		}
		s.IdemShards(ctx, "digest")
	}
	if n := hook.n.Load(); n != 1 {
		t.Errorf("50 calls with Redis down sent %d pipelines, want 1", n)
	}
	hook.n.Store(0)
	clock.Add(int64(2 * time.Second))
	s.ShardsInUse(ctx)
	if n := hook.n.Load(); n != 1 {
		t.Errorf("a second later: %d pipelines, want 1", n)
	}
}
