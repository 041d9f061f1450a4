package testkit

import (
	"context"
	"fmt"
	"slices"
	"strings"
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
	iter := rdb.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		key := iter.Val()
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
	if err := iter.Err(); err != nil {
		t.Fatalf("testkit: scanning Redis: %v", err)
	}
	return out
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
