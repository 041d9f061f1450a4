package testkit

import (
	"context"
	"slices"
	"testing"

	"github.com/redis/go-redis/v9"
)

// The scan finds a needle in a value of every type, and in a key's name.
func TestRedisKeysContaining(t *testing.T) {
	rdb := StartRedis(t).Client(t)
	ctx := context.Background()
	const needle = "needle-7f3a"
	rdb.Set(ctx, "s", "a "+needle+" b", 0)
	rdb.HSet(ctx, "h", "f", needle)
	rdb.HSet(ctx, "hf", needle, "v")
	rdb.RPush(ctx, "l", "x", needle)
	rdb.SAdd(ctx, "set", needle)
	rdb.ZAdd(ctx, "z", redis.Z{Score: 1, Member: needle})
	rdb.XAdd(ctx, &redis.XAddArgs{Stream: "x", Values: []string{"k", needle}})
	rdb.Set(ctx, "name-"+needle, "v", 0)
	rdb.Set(ctx, "clean", "nothing here", 0)
	want := []string{"h", "hf", "l", "name-" + needle, "s", "set", "x", "z"}
	if got := RedisKeysContaining(t, rdb, "other", needle); !slices.Equal(got, want) {
		t.Errorf("found in %q, want %q", got, want)
	}
	if got := RedisKeysContaining(t, rdb, "absent"); len(got) != 0 {
		t.Errorf("found absent in %q", got)
	}
}
