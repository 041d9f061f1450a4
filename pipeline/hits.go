package pipeline

import (
	"context"
	"errors"
	"hash/fnv"
	"sync"
	"time"

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
	m := s.opt.Metrics
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
			s.drainHits(q, batch[:0])
			return
		}
		batch = fillBatch(q, batch)
		s.recordBatch(context.WithoutCancel(ctx), batch)
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

// drainHits records, at shutdown, every hit still queued on q.
func (s *Service) drainHits(q chan trackHit, batch []trackHit) {
	for {
		if batch = fillBatch(q, batch[:0]); len(batch) == 0 {
			return
		}
		s.recordBatch(context.Background(), batch)
	}
}

// recordBatch records batch in one MULTI and counts the outcome of each hit.
func (s *Service) recordBatch(ctx context.Context, batch []trackHit) {
	ctx, cancel := context.WithTimeout(ctx, hitWriteTimeout)
	defer cancel()
	hits := make([]store.Hit, len(batch))
	for i, h := range batch {
		hits[i] = store.Hit{EmailID: h.emailID, Decide: s.decideHit(ctx, h)}
	}
	errs, err := s.store.TrackHits(ctx, hits)
	m := s.opt.Metrics
	m.hitsQueued.Sub(float64(len(batch)))
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
		default:
			m.hits.WithLabelValues("failed").Inc()
			s.opt.Logger.Warn("recording a tracking hit failed", "email", batch[i].emailID, "err", err)
		}
	}
}
