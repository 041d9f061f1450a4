package pipeline

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
	"github.com/pigeonpost/pigeonpost/tracking"
)

// With 3 shards, each idempotent send stores its emails, its message and
// its response in the shard of its key (one MULTI: on a cluster the slot
// checker would fail it otherwise), the sends spread over the shards, and
// a retry of each finds the first answer.
func TestIdempotentSendsAcrossShards(t *testing.T) {
	ctx := context.Background()
	rdb := testkit.RedisClient(t)
	st := store.New(rdb, time.Now)
	st.SetShards(3)
	svc := New(st, tracking.NewSigner([]byte("secret")), Options{Hostname: "gw.test", PublicURL: "https://t.test",
		RateLimit: RateLimit{PerSecond: 1000, Burst: 1000}})
	k := testKey(t, st, "acme", "sp_test_pipelineunittestkey0000001")
	send := func(key string) *Receipt {
		t.Helper()
		claim, replay, err := svc.ClaimSend(ctx, k, ScopeSend, key, []byte("request"))
		if err != nil {
			t.Fatal(err)
		}
		if replay != nil {
			return replay
		}
		r, err := svc.Submit(ctx, Submission{Key: k, Source: "api", EnvelopeFrom: "hello@acme.test",
			Recipients: []string{"a@example.test", "b@example.test"}, Claim: claim,
			Message: []byte("From: hello@acme.test\r\nTo: a@example.test\r\nSubject: s\r\n\r\nbody\r\n")})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	shards := map[store.Shard]bool{}
	for i := range 12 {
		key := "order-" + strconv.Itoa(i)
		first := send(key)
		if first.Replayed || len(first.IDs) != 2 {
			t.Fatalf("first send of %s: %+v", key, first)
		}
		shard := store.ShardOf(first.IDs[0])
		shards[shard] = true
		e, err := st.Email(ctx, first.IDs[1])
		if err != nil || store.ShardOf(e.ID) != shard || store.ShardOf(e.Message) != shard {
			t.Fatalf("send %s: email %+v (%v) not all in shard %d", key, e, err, shard)
		}
		again := send(key)
		if !again.Replayed || !slices.Equal(again.IDs, first.IDs) {
			t.Errorf("retry of %s: %+v, want the first answer %v", key, again, first.IDs)
		}
	}
	if len(shards) < 2 {
		t.Errorf("12 idempotent sends all in shards %v", shards)
	}
}

// A retry finds the first answer after redis.shards changed within the
// key's lifetime, in either direction: the sends a 3-shard process stored
// (most in shards other than 0) are replayed by a process with 1 shard,
// and those it stored by a new 3-shard process. A process that never
// heard of another count looks in one shard alone.
func TestIdempotencyAcrossShardCounts(t *testing.T) {
	ctx := context.Background()
	rdb := testkit.RedisClient(t)
	service := func(shards int) (*Service, *store.Store) {
		st := store.New(rdb, time.Now)
		st.SetShards(shards)
		if err := st.RegisterShards(ctx); err != nil {
			t.Fatal(err)
		}
		return New(st, tracking.NewSigner([]byte("secret")), Options{Hostname: "gw.test", PublicURL: "https://t.test",
			RateLimit: RateLimit{PerSecond: 1000, Burst: 1000}}), st
	}
	three, st3 := service(3)
	k := testKey(t, st3, "acme", "sp_test_pipelineunittestkey0000001")
	send := func(svc *Service, key string) *Receipt {
		t.Helper()
		claim, replay, err := svc.ClaimSend(ctx, k, ScopeSend, key, []byte("request "+key))
		if err != nil {
			t.Fatal(err)
		}
		if replay != nil {
			return replay
		}
		r, err := svc.Submit(ctx, Submission{Key: k, Source: "api", EnvelopeFrom: "hello@acme.test",
			Recipients: []string{"a@example.test"}, Claim: claim,
			Message: []byte("From: hello@acme.test\r\nTo: a@example.test\r\nSubject: s\r\n\r\nbody\r\n")})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if got := st3.IdemShards(ctx, "digest"); len(got) != 1 {
		t.Errorf("one count in use: IdemShards = %v, want one shard", got)
	}
	first := map[string][]string{}
	elsewhere := 0
	for i := range 6 {
		key := "before-" + strconv.Itoa(i)
		first[key] = send(three, key).IDs
		if store.ShardOf(first[key][0]) != 0 {
			elsewhere++
		}
	}
	if elsewhere == 0 {
		t.Fatal("6 sends with 3 shards all in shard 0: the test proves nothing")
	}
	one, _ := service(1)
	for i := range 6 {
		key := "after-" + strconv.Itoa(i)
		first[key] = send(one, key).IDs
	}
	for key, ids := range first {
		if again := send(one, key); !again.Replayed || !slices.Equal(again.IDs, ids) {
			t.Errorf("1 shard, retry of %s: %+v, want the first answer %v", key, again, ids)
		}
	}
	threeAgain, _ := service(3)
	for key, ids := range first {
		if again := send(threeAgain, key); !again.Replayed || !slices.Equal(again.IDs, ids) {
			t.Errorf("3 shards again, retry of %s: %+v, want the first answer %v", key, again, ids)
		}
	}
}
