package webhooks

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// The fan-out reads each shard's event stream, and two events that the
// streams of two shards gave one stream id are two events: each gets its
// own delivery (shard 1's event id carries "-q1"), neither is taken for
// the other's and skipped.
func TestFanOutEveryShard(t *testing.T) {
	e := newReplayEnv(t, "email.delivered")
	e.st.SetShards(2)
	d := &Dispatcher{Store: e.st, Now: func() time.Time { return e.now }}
	d.defaults()
	for k := range e.st.WriteShards() {
		if err := e.st.EnsureWebhookGroup(e.ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	id := fmt.Sprintf("%d-0", e.now.UnixMilli())
	for k := range e.st.WriteShards() {
		email := store.NewIDIn("em", k)
		e.email(email, "rcpt@example.test")
		raw, _ := json.Marshal(ev(store.EventDelivered, email, e.now, nil))
		if err := e.rdb.XAdd(e.ctx, &redis.XAddArgs{Stream: store.EventStreamKey(k), ID: id,
			Values: []any{"account", replayAccount, "email", email, "type", string(store.EventDelivered), "event", string(raw)}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(e.ctx)
	var loops sync.WaitGroup
	defer func() { cancel(); loops.Wait() }()
	for k := range e.st.WriteShards() {
		loops.Go(func() { d.fanOutLoop(ctx, k) })
	}
	testkit.WaitFor(t, "a delivery of each shard's event", func() bool { return len(e.queued()) == 2 })
	var got []string
	for _, q := range e.queued() {
		got = append(got, q.StreamID)
	}
	slices.Sort(got)
	if want := []string{id, id + "-q1"}; !slices.Equal(got, want) {
		t.Errorf("deliveries of events %v, want %v", got, want)
	}
}
