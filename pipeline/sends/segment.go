package sends

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/clock"
	"github.com/pigeonpost/pigeonpost/internal/retry"
	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/contacts"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// SegmentSent is the answer to a send to a segment: the batch its sends
// are grouped in, and how many subscribed contacts it goes to. It is also
// the response stored under an idempotency key.
type SegmentSent struct {
	BatchID   string `json:"batchId"`
	SegmentID string `json:"segmentId"`
	Count     int    `json:"count"`
	Replayed  bool   `json:"-"`
}

// Fan-out pacing.
const (
	fanOutChunk = 500              // sends stored per MULTI
	fanOutLease = 30 * time.Second // a dead process's fan-outs are taken over after this
	fanOutPoll  = time.Second      // how often Run looks for fan-outs of other processes
)

// fanOutRetry paces the retries of a chunk that storage or the rate limit
// refused.
var fanOutRetry = retry.Schedule{Initial: time.Second, Max: time.Minute}

// job is what a segment's fan-out needs, stored with its batch.
type job struct {
	KeyID            string            `json:"keyId"`
	Message          Message           `json:"message"`
	At               time.Time         `json:"at"` // the schedule, read when the send was accepted
	Personalizations map[string]string `json:"personalizations,omitempty"`
}

// SendToSegment sends the message to every subscribed contact of the
// segment, each its own send in one batch. The contacts are chosen now and
// stored with the batch before the answer; their sends are made in the
// background by Run, fanOutChunk per MULTI, within the account's rate
// limit (GET /v1/batches/:id shows the progress), and survive a restart.
func (s *Service) SendToSegment(ctx context.Context, k *store.Key, m Message, segmentID string, personal map[string]string, idempotencyKey string) (_ *SegmentSent, err error) {
	if err := pipeline.RequirePermission(k, store.PermissionFull); err != nil {
		return nil, err
	}
	var replay SegmentSent
	claim, err := claimKey(ctx, s, k, scopeSegment, idempotencyKey, struct {
		Message
		SegmentID        string
		Personalizations map[string]string
	}{m, segmentID, personal}, &replay)
	if err != nil || replay.Replayed {
		return &replay, err
	}
	defer s.releaseOnError(claim, &err)
	p, err := s.prepare(ctx, k, m)
	if err != nil {
		return nil, err
	}
	var ids []string
	var first *contacts.Contact
	err = s.contacts.EachInSegment(ctx, k.AccountID, segmentID, func(cs []*contacts.Contact) error {
		if first == nil && len(cs) > 0 {
			first = cs[0]
		}
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
	// A template the first contact cannot fill (a token with no value) is
	// refused now, not found out contact by contact in the background.
	if first != nil {
		if _, err := s.submission(k, p, first, personal, "", 0); err != nil {
			return nil, pipeline.AsError(err).Withf("%s (for the segment's contact %s)", pipeline.AsError(err).Message, first.ID)
		}
	}
	raw, err := json.Marshal(job{KeyID: k.ID, Message: m, At: p.at, Personalizations: personal})
	if err != nil {
		return nil, err
	}
	batch := &store.Batch{ID: store.NewIDIn("bat", s.sub.ShardFor(claim)), AccountID: k.AccountID, TemplateID: p.tmpl.ID, SegmentID: segmentID,
		Total: len(ids), CreatedAt: s.opt.Now().UTC()}
	opt := pipeline.AllOptions{Batch: batch, Claim: claim}
	if len(ids) > 0 {
		batch.FanningOut, batch.Job = true, raw
		opt.FanOut = &store.FanOutStep{BatchID: batch.ID, Queue: ids}
	}
	out := &SegmentSent{BatchID: batch.ID, SegmentID: segmentID, Count: len(ids)}
	opt.Respond = func([]pipeline.Result) ([]byte, error) { return json.Marshal(out) }
	// No message yet: the batch, its queue and the idempotent answer, in
	// one MULTI.
	if _, err := s.sub.SubmitAll(ctx, k, nil, opt); err != nil {
		return nil, err
	}
	select {
	case s.wake <- struct{}{}:
	default: // Run is busy; it looks again before it sleeps
	}
	return out, nil
}

// Run makes the sends of segments, this process's and those another
// process left (its lease expired), until ctx is done. Each chunk of sends
// is stored with its ids taken off the batch's queue, so a stop at any
// point loses and repeats nothing.
func (s *Service) Run(ctx context.Context) error {
	token := store.NewID("fan")
	for {
		batches, err := s.store.FanOuts(ctx)
		if err != nil && ctx.Err() == nil {
			s.opt.Logger.Warn("reading the segments' sends to make failed", "err", err)
		}
		for _, id := range batches {
			s.fanOut(ctx, id, token)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		case <-time.After(fanOutPoll):
		}
	}
}

// fanOut makes the rest of a batch's sends if this process gets its lease.
func (s *Service) fanOut(ctx context.Context, batchID, token string) {
	log := s.opt.Logger.With("batch", batchID)
	if held, err := s.store.LeaseFanOut(ctx, batchID, token, fanOutLease); err != nil || !held {
		return
	}
	k, p, err := s.loadJob(ctx, batchID)
	if err != nil {
		if pipeline.AsError(err).HTTPStatus >= 500 {
			return // storage: tried again on the next round
		}
		log.Warn("the rest of a segment's sends is given up", "err", err)
		if err := s.store.StopFanOut(ctx, batchID); err != nil {
			log.Warn("giving up a segment's sends failed", "err", err)
		}
		return
	}
	batch := &store.Batch{ID: batchID}
	chunk := fanOutChunk // halved while a chunk's messages are over MaxBatchBytes
	for attempt := 0; ctx.Err() == nil; {
		if held, err := s.store.LeaseFanOut(ctx, batchID, token, fanOutLease); err != nil || !held {
			return
		}
		ids, err := s.store.NextFanOut(ctx, batchID, chunk)
		if err == nil && len(ids) == 0 {
			err = s.store.StopFanOut(ctx, batchID) // done
			if err == nil {
				return
			}
		}
		if err == nil {
			rcpts := make([]Recipient, len(ids))
			for i, id := range ids {
				rcpts[i] = Recipient{To: id, Personalizations: p.personal}
			}
			step := &store.FanOutStep{BatchID: batchID, Taken: len(ids), Last: len(ids) < chunk}
			sent := make([]Sent, len(rcpts))
			err = s.sendEach(ctx, k, p.prepared, rcpts, sent, batch, pipeline.AllOptions{FanOut: step})
			if err == nil {
				logRefused(log, sent)
				attempt = 0
				if step.Last {
					return
				}
				continue
			}
			if errors.Is(err, pipeline.ErrTooBig) && chunk > 1 {
				chunk /= 2
				continue
			}
		}
		attempt++
		wait := fanOutRetry.Delay(attempt)
		if pe := pipeline.AsError(err); pe.RetryAfter > 0 {
			wait = pe.RetryAfter
		}
		log.Warn("a chunk of a segment's sends was refused; trying again", "attempt", attempt, "wait", wait, "err", err)
		clock.Sleep(ctx, min(wait, fanOutLease/2))
	}
}

// logRefused says how many contacts of a chunk got no send (deleted
// meanwhile, or a token their fields leave empty), with the first reason:
// nobody waits for the answer to tell them.
func logRefused(log *slog.Logger, sent []Sent) {
	n, first := 0, ""
	for _, s := range sent {
		if s.Error != nil {
			if n++; first == "" {
				first = s.To + ": " + s.Error.Message
			}
		}
	}
	if n > 0 {
		log.Warn("contacts of a segment got no send", "refused", n, "first", first)
	}
}

// jobPrepared is a stored job made ready to send.
type jobPrepared struct {
	*prepared
	personal map[string]string
}

// loadJob reads a batch's job and prepares its message with the key that
// sent it. An error that is not a storage failure means the job cannot be
// made (its key was revoked, its template deleted).
func (s *Service) loadJob(ctx context.Context, batchID string) (*store.Key, *jobPrepared, error) {
	b, err := s.store.Batch(ctx, batchID)
	if err != nil {
		return nil, nil, pipeline.StorageError(err)
	}
	var j job
	if err := json.Unmarshal(b.Job, &j); err != nil {
		return nil, nil, pipeline.ErrInvalid.With("the stored job does not decode: " + err.Error())
	}
	k, err := s.store.KeyByID(ctx, j.KeyID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, pipeline.ErrAuthFailed.With("the API key that sent to the segment was revoked")
	}
	if err != nil {
		return nil, nil, pipeline.StorageError(err)
	}
	at := j.At
	if at.Before(s.opt.Now()) {
		at = time.Time{} // its time came while it waited: now
	}
	p, err := s.load(ctx, k, j.Message, at)
	if err != nil {
		return nil, nil, err
	}
	return k, &jobPrepared{prepared: p, personal: j.Personalizations}, nil
}
