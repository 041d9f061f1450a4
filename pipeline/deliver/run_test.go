package deliver

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// TestWorkerReadsOnlyWhatItCanAttempt: a worker whose attempts are all
// busy with a destination that does not answer leaves the rest of the
// queue in Redis, where another process's worker sends it; nothing waits
// in a process that cannot attempt it.
func TestWorkerReadsOnlyWhatItCanAttempt(t *testing.T) {
	r := newShapeRig(t)
	held, release := r.sink.Hold("data")
	// The other process's way to the destination is clear: a sink of its own.
	clear := testkit.StartSink(t, testkit.SinkOptions{})
	slow, fast := r.worker(nil), r.worker(nil)
	slow.Concurrency = 2
	fast.Transport.Port = clear.Port()
	for _, w := range []*Worker{slow, fast} {
		w.ClaimIdle = time.Hour // neither takes over the other's entries
	}
	ctx, cancel := context.WithCancel(context.Background())
	var running sync.WaitGroup
	t.Cleanup(func() { release(); cancel(); running.Wait() })
	running.Go(func() { _ = slow.Run(ctx) })

	r.queue("a@dest.test", "b@dest.test", "c@dest.test", "d@dest.test", "e@dest.test")
	<-held
	<-held // both of the slow worker's attempts wait at its destination
	running.Go(func() { _ = fast.Run(ctx) })
	clear.Wait(t, 3, 20*time.Second)

	release()
	r.sink.Wait(t, 2, 20*time.Second)
	if n := len(r.sink.Messages()) + len(clear.Messages()); n != 5 {
		t.Errorf("%d deliveries of 5 messages", n)
	}
}

// failOnce fails the first pipeline sent through it that holds an HGETALL
// (the read of an email that starts an attempt), as a Redis failover would.
type failOnce struct{ failed atomic.Bool }

func (*failOnce) DialHook(next redis.DialHook) redis.DialHook { return next }

func (*failOnce) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (f *failOnce) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if slices.ContainsFunc(cmds, func(c redis.Cmder) bool { return c.Name() == "hgetall" }) && f.failed.CompareAndSwap(false, true) {
			return errors.New("EOF (injected)")
		}
		return next(ctx, cmds)
	}
}

// TestAttemptFailedOnRedisTriedAgain: an attempt that Redis fails mid-way
// (a failover) leaves the entry pending to a worker that is alive, so no
// other worker takes it over until ClaimIdle; the worker itself tries it
// again, in a second, and it is delivered.
func TestAttemptFailedOnRedisTriedAgain(t *testing.T) {
	r := newShapeRig(t)
	w := r.worker(nil)
	w.ClaimIdle = time.Hour
	hook := &failOnce{}
	rdb := r.redis.Client(t)
	rdb.AddHook(hook)
	w.Store = store.New(rdb, r.clk.Now)
	ctx, cancel := context.WithCancel(context.Background())
	var running sync.WaitGroup
	t.Cleanup(func() { cancel(); running.Wait() })
	running.Go(func() { _ = w.Run(ctx) })

	id := r.queue("a@dest.test")[0]
	r.sink.Wait(t, 1, 20*time.Second)
	if !hook.failed.Load() {
		t.Fatal("no attempt failed")
	}
	testkit.WaitFor(t, "the email recorded delivered", func() bool { return r.email(id).Status == store.StatusDelivered })
}
