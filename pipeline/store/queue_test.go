package store

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
)

// TestClaimOrphaned: the entries a consumer left pending are taken over at
// once when its liveness key is gone (killed: the key expired; stopped:
// Retire), never while it is alive; a dead consumer that holds nothing is
// removed from the group.
func TestClaimOrphaned(t *testing.T) {
	rdb := testkit.RedisClient(t)
	s := New(rdb, time.Now)
	ctx := context.Background()
	if err := s.EnsureGroup(ctx, 0); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"em_1", "em_2"} {
		if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: StreamKey(0), Values: map[string]any{"id": id}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	read := func(consumer string) string {
		t.Helper()
		if err := s.Heartbeat(ctx, 0, consumer, time.Hour); err != nil {
			t.Fatal(err)
		}
		got, err := s.ReadNew(ctx, 0, consumer, 1, -1)
		if err != nil || len(got) != 1 {
			t.Fatalf("read for %s: %v %v", consumer, got, err)
		}
		return got[0].EmailID
	}
	first, second := read("killed"), read("running")
	if err := s.Heartbeat(ctx, 0, "live", time.Hour); err != nil {
		t.Fatal(err)
	}

	rdb.Del(ctx, AliveKey(0, "killed")) // as if its TTL ran out
	var claimed []Entry
	testkit.WaitFor(t, "the killed consumer's entry to be taken over", func() bool {
		got, err := s.ClaimOrphaned(ctx, 0, "live", 10)
		if err != nil {
			t.Fatal(err)
		}
		claimed = append(claimed, got...)
		return len(claimed) > 0
	})
	if len(claimed) != 1 || claimed[0].EmailID != first {
		t.Fatalf("claimed %+v, want only %s", claimed, first)
	}
	if got, err := s.ClaimOrphaned(ctx, 0, "other", 10); err != nil || len(got) != 0 {
		t.Fatalf("a second claimer took %+v (%v): the entry is the live consumer's now", got, err)
	}

	if err := s.Retire(ctx, 0, "running"); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "the stopped consumer's entry to be taken over", func() bool {
		got, err := s.ClaimOrphaned(ctx, 0, "live", 10)
		if err != nil {
			t.Fatal(err)
		}
		claimed = append(claimed, got...)
		return len(claimed) == 2
	})
	if claimed[1].EmailID != second {
		t.Fatalf("claimed %+v, want %s second", claimed, second)
	}
	testkit.WaitFor(t, "the dead consumers to leave the group", func() bool {
		if _, err := s.ClaimOrphaned(ctx, 0, "live", 10); err != nil {
			t.Fatal(err)
		}
		consumers, err := rdb.XInfoConsumers(ctx, StreamKey(0), GroupName).Result()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, c := range consumers {
			names = append(names, c.Name)
		}
		return !slices.Contains(names, "killed") && !slices.Contains(names, "running") && slices.Contains(names, "live")
	})
}
