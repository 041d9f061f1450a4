package testkit

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
)

// RedisValues returns every key of rdb with what its value holds, as
// strings: a string's value, a hash's fields and values, a list's, set's
// and sorted set's members, a stream's entries' fields and values. A key
// of another type fails the test, so that a scan for what must not be
// stored cannot miss a value it does not read.
func RedisValues(t testing.TB, rdb redis.UniversalClient) map[string][]string {
	t.Helper()
	ctx := context.Background()
	out := map[string][]string{}
	for _, key := range RedisKeys(t, rdb, "*") {
		var vals []string
		switch typ := rdb.Type(ctx, key).Val(); typ {
		case "string":
			vals = append(vals, rdb.Get(ctx, key).Val())
		case "hash":
			for k, v := range rdb.HGetAll(ctx, key).Val() {
				vals = append(vals, k, v)
			}
		case "list":
			vals = append(vals, rdb.LRange(ctx, key, 0, -1).Val()...)
		case "set":
			vals = append(vals, rdb.SMembers(ctx, key).Val()...)
		case "zset":
			vals = append(vals, rdb.ZRange(ctx, key, 0, -1).Val()...)
		case "stream":
			for _, m := range rdb.XRange(ctx, key, "-", "+").Val() {
				for k, v := range m.Values {
					vals = append(vals, k, fmt.Sprint(v))
				}
			}
		case "none": // expired meanwhile
			continue
		default:
			t.Errorf("testkit: key %s has type %s, which RedisValues does not read", key, typ)
		}
		out[key] = vals
	}
	return out
}

// RedisKeys returns the keys of rdb matching pattern, sorted; on a cluster,
// those of every master (SCAN and KEYS see one node).
func RedisKeys(t testing.TB, rdb redis.UniversalClient, pattern string) []string {
	t.Helper()
	ctx := context.Background()
	var mu sync.Mutex
	var keys []string
	scan := func(ctx context.Context, c redis.UniversalClient) error {
		iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			mu.Lock()
			keys = append(keys, iter.Val())
			mu.Unlock()
		}
		return iter.Err()
	}
	var err error
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) })
	} else {
		err = scan(ctx, rdb)
	}
	if err != nil {
		t.Fatalf("testkit: scanning Redis: %v", err)
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// RedisKeysContaining returns the keys of rdb whose name or value (of any
// type, RedisValues) contains one of needles.
func RedisKeysContaining(t testing.TB, rdb redis.UniversalClient, needles ...string) []string {
	t.Helper()
	has := func(v string) bool {
		return slices.ContainsFunc(needles, func(n string) bool { return strings.Contains(v, n) })
	}
	var hits []string
	for key, vals := range RedisValues(t, rdb) {
		if has(key) || slices.ContainsFunc(vals, has) {
			hits = append(hits, key)
		}
	}
	slices.Sort(hits)
	return hits
}
