package deliver

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
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
