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

// The fan-out acknowledges the events it handled with its next read, in
// the same round trip, and those it handled last when it stops: none is
// left pending to be claimed and fanned out again.
func TestFanOutAcknowledges(t *testing.T) {
	e := newReplayEnv(t, "email.delivered")
	d := &Dispatcher{Store: e.st, Now: func() time.Time { return e.now }}
	d.defaults()
	if err := e.st.EnsureWebhookGroup(e.ctx, 0); err != nil {
		t.Fatal(err)
	}
	pending := func() int64 {
		t.Helper()
		p, err := e.rdb.XPending(e.ctx, store.EventStreamKey(0), store.WebhookGroup).Result()
		if err != nil {
			t.Fatal(err)
		}
		return p.Count
	}
	add := func(email string) {
		t.Helper()
		e.email(email, email+"@example.test")
		if err := e.st.AddEvent(e.ctx, ev(store.EventDelivered, email, e.now, nil)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(e.ctx)
	stopped := make(chan struct{})
	go func() { d.fanOutLoop(ctx, 0); close(stopped) }()
	defer func() { cancel(); <-stopped }()

	add("em_1")
	testkit.WaitFor(t, "the first event fanned out", func() bool { return len(e.queued()) == 1 })
	// The loop lingers, then reads again (blocking): the XACK went with it.
	testkit.WaitFor(t, "the first event acknowledged", func() bool { return pending() == 0 })

	add("em_2")
	testkit.WaitFor(t, "the second event fanned out", func() bool { return len(e.queued()) == 2 })
	cancel()
	<-stopped
	if n := pending(); n != 0 {
		t.Errorf("%d events pending after the fan-out stopped, want 0", n)
	}
}
