package engagement

import (
	"context"
	"errors"
	"hash/fnv"
	"sync"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/clock"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
	"github.com/pigeonpost/pigeonpost/tracking"
)

// Tracking hits are answered first and recorded after: the pixel needs
// nothing from Redis and a click only its link, so neither waits for a
// write and its fsync. A hit goes into a bounded in-process queue that
// RecordHits drains in batches, one MULTI a batch (store.TrackHits). What a
// crash can lose is the hits still queued: tracking events, never mail.
// When the queue is full a hit waits for room as long as the request's
// context allows, then is dropped and counted.

// trackHit is one request to a tracking endpoint, kept until recorded.
type trackHit struct {
	emailID string
	kind    tracking.HitKind
	index   int // the link's, for a click
	visitor Visitor
	at      time.Time // when the request came: hits are classified by it
}

const (
	// hitRecorders record side by side: one prepares a batch while another
	// waits for Redis's fsync. Each has its own queue, and an email's hits
	// all go to the same one, so that they never WATCH the same records.
	hitRecorders = 2
	hitQueueSize = 8192 // a recorder's
	hitBatchSize = 256
	// hitWriteTimeout bounds the Redis work of one batch.
	hitWriteTimeout = 10 * time.Second
	// A batch that Redis refused (down, slow, or records that kept
	// changing under it) is tried again after hitRetryFirst, doubling up to
	// hitRetryMax between tries, for hitRetryFor in all; then its hits are
	// counted failed. Meanwhile its recorder's queue fills and, full, drops
	// new hits. A try whose EXEC went through but whose answer was lost is
	// recorded again: a rare extra event, rather than losing every hit of a
	// Redis restart. At shutdown there is no retry.
	hitRetryFirst = 100 * time.Millisecond
	hitRetryMax   = 2 * time.Second
	hitRetryFor   = 30 * time.Second
)

// newHitQueues returns the recorders' queues.
func newHitQueues() []chan trackHit {
	q := make([]chan trackHit, hitRecorders)
	for i := range q {
		q[i] = make(chan trackHit, hitQueueSize)
	}
	return q
}

// queueHit hands h to its recorder, waiting for room at most until ctx is
// done; a hit that finds none is dropped and counted.
func (s *Service) queueHit(ctx context.Context, h trackHit) {
	m := s.metrics
	m.hitsQueued.Inc() // before the recorder can take it: the gauge never goes below 0
	f := fnv.New32a()
	_, _ = f.Write([]byte(h.emailID))
	q := s.hits[f.Sum32()%hitRecorders]
	select {
	case q <- h:
	default:
		select {
		case q <- h:
		case <-ctx.Done():
			m.hitsQueued.Dec()
			m.hits.WithLabelValues("dropped").Inc()
			s.opt.Logger.Warn("tracking hit dropped: the recording queue is full", "email", h.emailID)
		}
	}
}

// RecordHits records queued tracking hits until ctx is done, then records
// what is still queued and returns. Run it once per process; stop it after
// the HTTP listener, so that no hit is queued after it drained.
func (s *Service) RecordHits(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, q := range s.hits {
		wg.Go(func() { s.recordHitsUntil(ctx, q) })
	}
	wg.Wait()
	return nil
}

// recordHitsUntil is one recorder: it takes the hits queued on q, up to a
// batch, and records them together.
func (s *Service) recordHitsUntil(ctx context.Context, q chan trackHit) {
	batch := make([]trackHit, 0, hitBatchSize)
	for {
		select {
		case h := <-q:
			batch = append(batch, h)
		case <-ctx.Done():
			s.drainHits(ctx, q, batch[:0])
			return
		}
		batch = fillBatch(q, batch)
		s.recordBatch(ctx, batch)
		batch = batch[:0]
	}
}

// fillBatch adds to batch the hits queued on q now, up to a batch's size.
func fillBatch(q chan trackHit, batch []trackHit) []trackHit {
	for len(batch) < cap(batch) {
		select {
		case h := <-q:
			batch = append(batch, h)
		default:
			return batch
		}
	}
	return batch
}

// drainHits records, at shutdown (stop is done), every hit still queued on q.
func (s *Service) drainHits(stop context.Context, q chan trackHit, batch []trackHit) {
	for {
		if batch = fillBatch(q, batch[:0]); len(batch) == 0 {
			return
		}
		s.recordBatch(stop, batch)
	}
}

// recordBatch records batch in one MULTI, trying again while Redis refuses
// it (hitRetryFor) unless stop is done, and counts the outcome of each hit.
func (s *Service) recordBatch(stop context.Context, batch []trackHit) {
	m := s.metrics
	defer m.hitsQueued.Sub(float64(len(batch)))
	wait, giveUp := hitRetryFirst, time.Now().Add(hitRetryFor)
	errs, err := s.writeHits(context.WithoutCancel(stop), batch)
	for err != nil && time.Now().Add(wait).Before(giveUp) && clock.Sleep(stop, wait) {
		m.hitRetries.Inc()
		errs, err = s.writeHits(context.WithoutCancel(stop), batch)
		wait = min(2*wait, hitRetryMax)
	}
	if err != nil {
		m.hits.WithLabelValues("failed").Add(float64(len(batch)))
		s.opt.Logger.Warn("recording tracking hits failed", "hits", len(batch), "err", err) // never a visitor: privacy mode
		return
	}
	for i, err := range errs {
		switch {
		case err == nil:
			m.hits.WithLabelValues("recorded").Inc()
		case errors.Is(err, store.ErrNotFound), errors.Is(err, errNoSuchLink):
			m.hits.WithLabelValues("unknown").Inc()
		case errors.Is(err, errHitsCapped):
			m.hits.WithLabelValues("capped").Inc()
		default:
			m.hits.WithLabelValues("failed").Inc()
			s.opt.Logger.Warn("recording a tracking hit failed", "email", batch[i].emailID, "err", err)
		}
	}
}

// writeHits is one try of recordBatch.
func (s *Service) writeHits(ctx context.Context, batch []trackHit) ([]error, error) {
	ctx, cancel := context.WithTimeout(ctx, hitWriteTimeout)
	defer cancel()
	hits := make([]store.Hit, len(batch))
	for i, h := range batch {
		hits[i] = store.Hit{EmailID: h.emailID, Decide: s.decideHit(ctx, h)}
	}
	return s.store.TrackHits(ctx, hits)
}
