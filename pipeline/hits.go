package pipeline

import (
	"context"
	"errors"
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
	hitQueueSize = 16384
	hitBatchSize = 256
	// hitRecorders run side by side: one prepares a batch while another
	// waits for Redis's fsync.
	hitRecorders = 2
	// hitWriteTimeout bounds the Redis work of one batch.
	hitWriteTimeout = 10 * time.Second
)

// queueHit hands h to the recorders, waiting for room at most until ctx is
// done; a hit that finds none is dropped and counted.
func (s *Service) queueHit(ctx context.Context, h trackHit) {
	m := s.opt.Metrics
	m.hitsQueued.Inc() // before the recorders can take it: the gauge never goes below 0
	select {
	case s.hits <- h:
	default:
		select {
		case s.hits <- h:
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
	done := make(chan struct{})
	for range hitRecorders {
		go func() {
			defer func() { done <- struct{}{} }()
			s.recordHitsUntil(ctx)
		}()
	}
	for range hitRecorders {
		<-done
	}
	return nil
}

// recordHitsUntil is one recorder: it takes the hits that are queued, up
// to a batch, and records them together.
func (s *Service) recordHitsUntil(ctx context.Context) {
	batch := make([]trackHit, 0, hitBatchSize)
	for {
		select {
		case h := <-s.hits:
			batch = append(batch, h)
		case <-ctx.Done():
			s.drainHits(batch[:0])
			return
		}
		batch = s.fillBatch(batch)
		s.recordBatch(context.WithoutCancel(ctx), batch)
		batch = batch[:0]
	}
}

// fillBatch adds to batch the hits queued now, up to a batch's size.
func (s *Service) fillBatch(batch []trackHit) []trackHit {
	for len(batch) < cap(batch) {
		select {
		case h := <-s.hits:
			batch = append(batch, h)
		default:
			return batch
		}
	}
	return batch
}

// drainHits records, at shutdown, every hit still queued.
func (s *Service) drainHits(batch []trackHit) {
	for {
		if batch = s.fillBatch(batch[:0]); len(batch) == 0 {
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
