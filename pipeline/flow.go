package pipeline

import (
	"context"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/clock"
)

// In-flow control, after Postfix's in_flow_delay: when delivery falls
// behind, acceptance slows to its pace instead of the queue growing
// without bound (until Redis's memory is full and every submission fails).
// With more than InFlow.BacklogLimit messages queued for delivery, each
// live submission waits InFlow.Delay before it is stored. Every process
// reads the shared queue's length, at most every backlogRefresh and never
// on the submitting path: a submission uses the last length read.

// InFlow is the in-flow control of submissions (delivery.backlog_limit and
// delivery.in_flow_delay).
type InFlow struct {
	BacklogLimit int64 // 0: off
	Delay        time.Duration
}

// backlogRefresh is how old the queue length read may be.
const backlogRefresh = 250 * time.Millisecond

// inFlowDelay waits InFlow.Delay, or until ctx is done, when the delivery
// backlog is over the limit.
func (s *Service) inFlowDelay(ctx context.Context) {
	f := s.opt.InFlow
	if f.BacklogLimit <= 0 || f.Delay <= 0 {
		return
	}
	s.refreshBacklog()
	if s.backlog.Load() <= f.BacklogLimit {
		return
	}
	s.opt.Metrics.inFlowDelays.Inc()
	clock.Sleep(ctx, f.Delay)
}

// refreshBacklog reads the queue's length in the background when the last
// reading is older than backlogRefresh, one reading at a time. A failed
// reading keeps the last one.
func (s *Service) refreshBacklog() {
	if time.Now().UnixNano()-s.backlogAt.Load() < int64(backlogRefresh) || !s.backlogReading.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer s.backlogReading.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		// Only the mail waiting for a worker: retries wait for remote
		// servers, not for this gateway's capacity.
		queued, _, err := s.store.QueueDepth(ctx)
		if err != nil {
			return
		}
		s.backlog.Store(queued)
		s.backlogAt.Store(time.Now().UnixNano())
	}()
}
