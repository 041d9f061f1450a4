package sends

import (
	"context"
	"errors"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/clock"
	"github.com/pigeonpost/pigeonpost/internal/retry"
	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/contacts"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// SegmentSent is the answer to a send to a segment: the batch its sends
// are grouped in, and how many subscribed contacts it goes to.
type SegmentSent struct {
	BatchID   string
	SegmentID string
	Count     int
}

// fanOutChunk is the number of sends stored per MULTI while a segment's
// sends are made.
const fanOutChunk = 500

// fanOutRetry paces the retries of a chunk that storage or the rate limit
// refused.
var fanOutRetry = retry.Schedule{Initial: time.Second, Max: time.Minute}

// SendToSegment sends the message to every subscribed contact of the
// segment, each its own send in one batch. The contacts are chosen now;
// their sends are made in the background, fanOutChunk per MULTI, within the
// account's rate limit (GET /v1/batches/:id shows the progress).
func (s *Service) SendToSegment(ctx context.Context, k *store.Key, m Message, segmentID string, personal map[string]string) (*SegmentSent, error) {
	if err := pipeline.RequirePermission(k, store.PermissionFull); err != nil {
		return nil, err
	}
	p, err := s.prepare(ctx, k, m)
	if err != nil {
		return nil, err
	}
	var ids []string
	err = s.contacts.EachInSegment(ctx, k.AccountID, segmentID, func(cs []*contacts.Contact) error {
		for _, c := range cs {
			ids = append(ids, c.ID)
		}
		return nil
	})
	if errors.Is(err, pipeline.ErrNotFound) {
		return nil, pipeline.ErrInvalid.With("segmentId: no segment " + pipeline.Quote(segmentID) + " in this account")
	}
	if err != nil {
		return nil, err
	}
	batch := &store.Batch{ID: store.NewID("bat"), AccountID: k.AccountID, TemplateID: p.tmpl.ID, SegmentID: segmentID,
		Total: len(ids), FanningOut: len(ids) > 0, CreatedAt: s.opt.Now().UTC()}
	if err := s.store.PutBatch(ctx, batch); err != nil {
		return nil, pipeline.StorageError(err)
	}
	if len(ids) > 0 {
		s.fanOutWG.Add(1)
		go func() {
			defer s.fanOutWG.Done()
			s.fanOut(s.bg, k, p, batch, ids, personal)
		}()
	}
	return &SegmentSent{BatchID: batch.ID, SegmentID: segmentID, Count: len(ids)}, nil
}

// fanOut makes the sends of a segment, chunk by chunk; the last chunk
// marks the batch done. A chunk that the rate limit or storage refuses is
// tried again, paced; nothing of a refused chunk was stored.
func (s *Service) fanOut(ctx context.Context, k *store.Key, p *prepared, batch *store.Batch, ids []string, personal map[string]string) {
	log := s.opt.Logger.With("batch", batch.ID, "segment", batch.SegmentID)
	for start := 0; start < len(ids); start += fanOutChunk {
		chunk := ids[start:min(start+fanOutChunk, len(ids))]
		rcpts := make([]Recipient, len(chunk))
		for i, id := range chunk {
			rcpts[i] = Recipient{To: id, Personalizations: personal}
		}
		b := *batch
		b.FanningOut = start+fanOutChunk < len(ids)
		for attempt := 1; ; attempt++ {
			err := s.sendEach(ctx, k, p, rcpts, make([]Sent, len(rcpts)), &b, nil, nil)
			if err == nil {
				break
			}
			wait := fanOutRetry.Delay(attempt)
			if pe := pipeline.AsError(err); pe.RetryAfter > 0 {
				wait = pe.RetryAfter
			}
			log.Warn("a chunk of a segment's sends was refused; trying again", "attempt", attempt, "wait", wait, "err", err)
			if !clock.Sleep(ctx, wait) {
				log.Warn("stopped before every send of the segment was made", "made", start, "of", len(ids))
				return
			}
		}
	}
}
