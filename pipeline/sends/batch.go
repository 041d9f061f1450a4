package sends

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/contacts"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// MaxBatch is the number of recipients one batch request may hold.
const MaxBatch = 1000

// MaxBatchBytes bounds the messages one batch renders, all held until
// they are stored together (1,000 recipients of a 1 MiB template would be
// 1 GiB; each tracked copy doubles its message).
const MaxBatchBytes = 64 << 20

// Batch is POST /v1/sends/batch: one message to many recipients, each
// with its own personalizations.
type Batch struct {
	Message
	Recipients []Recipient
}

// BatchSent is the outcome of a batch: one Sent per recipient, in order.
// It is also the response stored under the batch's idempotency key.
type BatchSent struct {
	BatchID  string `json:"batchId"`
	Sends    []Sent `json:"sends"`
	Replayed bool   `json:"-"`
}

// CheckBatchSize refuses a batch of more than MaxBatch recipients; the API
// calls it before decoding them.
func CheckBatchSize(n int) error {
	switch {
	case n == 0:
		return pipeline.ErrInvalid.With("recipients: at least one recipient is required")
	case n > MaxBatch:
		return pipeline.ErrInvalid.With(fmt.Sprintf("recipients: at most %d recipients per batch (got %d)", MaxBatch, n))
	}
	return nil
}

// SendBatch sends the message to each recipient on its own: one that is
// refused (a bad address, a missing personalization) gets its error in its
// Sent while the others are sent. Every send is stored, with the batch and
// the idempotent response, in one MULTI; the request as a whole fails only
// when the template or the shared fields are wrong, the rate limit
// refuses, or storage fails, and then nothing is sent.
func (s *Service) SendBatch(ctx context.Context, k *store.Key, b Batch, idempotencyKey string) (_ *BatchSent, err error) {
	if err := CheckBatchSize(len(b.Recipients)); err != nil {
		return nil, err
	}
	var replay BatchSent
	claim, err := claimKey(ctx, s, k, scopeBatch, idempotencyKey, b, &replay)
	if err != nil || replay.Replayed {
		return &replay, err
	}
	defer s.releaseOnError(claim, &err)
	p, err := s.prepare(ctx, k, b.Message)
	if err != nil {
		return nil, err
	}
	batch := &store.Batch{ID: store.NewIDIn("bat", s.sub.ShardFor(claim)), AccountID: k.AccountID, TemplateID: p.tmpl.ID,
		Total: len(b.Recipients), CreatedAt: s.opt.Now().UTC()}
	out := &BatchSent{BatchID: batch.ID, Sends: make([]Sent, len(b.Recipients))}
	err = s.sendEach(ctx, k, p, b.Recipients, out.Sends, batch, pipeline.AllOptions{Batch: batch, Claim: claim,
		Respond: func([]pipeline.Result) ([]byte, error) { return json.Marshal(out) }})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// sendEach resolves the contacts of rcpts and sends to each, writing the
// outcomes into sent (len(rcpts)) before opt.Respond is called. The sends
// belong to batch when it is not nil; opt says what is stored with them.
func (s *Service) sendEach(ctx context.Context, k *store.Key, p *prepared, rcpts []Recipient, sent []Sent,
	batch *store.Batch, opt pipeline.AllOptions) error {
	to := make([]string, len(rcpts))
	for i, r := range rcpts {
		to[i] = r.To
		sent[i].To = r.To
	}
	cs, errs, err := s.contacts.Resolve(ctx, k.AccountID, to)
	if err != nil {
		return err
	}
	// Every email goes to the shard of the batch, or the claim's.
	batchID, shard := "", s.sub.ShardFor(opt.Claim)
	if batch != nil {
		batchID, shard = batch.ID, store.ShardOf(batch.ID)
	}
	built, err := s.build(k, p, rcpts, cs, errs, sent, batchID, shard)
	if err != nil {
		return err
	}
	var subs []pipeline.Submission
	var at []int // index in rcpts of each of subs
	for i, sub := range built {
		if sub != nil {
			subs, at = append(subs, *sub), append(at, i)
		}
	}
	if respond := opt.Respond; respond != nil {
		opt.Respond = func(results []pipeline.Result) ([]byte, error) {
			fill(sent, at, results)
			return respond(results)
		}
	}
	results, err := s.sub.SubmitAll(ctx, k, subs, opt)
	if err != nil {
		return err
	}
	fill(sent, at, results)
	return nil
}

// build renders and composes the message of each recipient that resolved
// to a contact (errs[i] nil), on every core: it is most of a batch's CPU.
// A recipient refused here gets its error in sent[i] and no submission.
// The messages are held until they are stored together, so their size is
// bounded by MaxBatchBytes.
func (s *Service) build(k *store.Key, p *prepared, rcpts []Recipient, cs []*contacts.Contact, errs []error,
	sent []Sent, batchID string, shard store.Shard) ([]*pipeline.Submission, error) {
	built := make([]*pipeline.Submission, len(rcpts))
	var next, size atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), (len(rcpts)+63)/64) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(rcpts) || size.Load() > MaxBatchBytes {
					return
				}
				if errs[i] != nil {
					sent[i].Error = refusal(errs[i])
					continue
				}
				sent[i].To, sent[i].ContactID = cs[i].Email, cs[i].ID // a contact id given as to answers with its address
				sub, err := s.submission(k, p, cs[i], rcpts[i].Personalizations, batchID, shard)
				if err != nil {
					sent[i].Error = refusal(err)
					continue
				}
				size.Add(int64(len(sub.Message)))
				built[i] = &sub
			}
		})
	}
	wg.Wait()
	if size.Load() > MaxBatchBytes {
		return nil, pipeline.ErrTooBig.Withf("the batch's messages come to over %d MiB once rendered; send them in smaller batches, or with a smaller template", MaxBatchBytes>>20)
	}
	return built, nil
}

// fill writes the results of the submissions made for sent[at[j]].
func fill(sent []Sent, at []int, results []pipeline.Result) {
	for j, r := range results {
		s := &sent[at[j]]
		if r.Err != nil {
			s.Error = refusal(r.Err)
			continue
		}
		s.ID, s.Status, s.ScheduledAt, s.Warnings = r.Receipt.IDs[0], r.Receipt.Status, r.Receipt.ScheduledAt, r.Receipt.Warnings
	}
}

// Send sends the message to one recipient (SendToSegment sends it to a
// segment).
func (s *Service) Send(ctx context.Context, k *store.Key, req Request, idempotencyKey string) (_ *Sent, err error) {
	if strings.TrimSpace(req.To) == "" {
		return nil, pipeline.ErrInvalid.With("to: an address or a contact id is required (or segmentId)")
	}
	var replay Sent
	claim, err := claimKey(ctx, s, k, scopeSend, idempotencyKey, req, &replay)
	if err != nil || replay.Replayed {
		return &replay, err
	}
	defer s.releaseOnError(claim, &err)
	p, err := s.prepare(ctx, k, req.Message)
	if err != nil {
		return nil, err
	}
	sent := make([]Sent, 1)
	err = s.sendEach(ctx, k, p, []Recipient{req.Recipient}, sent, nil, pipeline.AllOptions{Claim: claim,
		Respond: func([]pipeline.Result) ([]byte, error) {
			if sent[0].Error != nil {
				return nil, nil // a refusal is not stored, and the claim is released
			}
			return json.Marshal(sent[0])
		}})
	if err != nil {
		return nil, err
	}
	if r := sent[0].Error; r != nil {
		return nil, r.cause
	}
	return &sent[0], nil
}
