package pipeline

import (
	"context"

	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// Result is the outcome of one submission of SubmitAll: a receipt or the
// error that refused it.
type Result struct {
	Receipt *Receipt
	Err     error
}

// AllOptions say what SubmitAll stores with the emails.
type AllOptions struct {
	// Batch is written in the same MULTI as the emails, and FanOut's
	// progress.
	Batch  *store.Batch
	FanOut *store.FanOutStep
	// Claim, from ClaimResponse, has Respond's answer stored under it in
	// the same MULTI; the caller releases it if SubmitAll fails, or if
	// Respond answers nil (nothing to replay).
	Claim   *Claim
	Respond func([]Result) ([]byte, error)
}

// SubmitAll submits many messages of one key together, as a batch of
// sends needs: each is checked on its own, and one that is refused gets
// its error in its Result while the others go on; then the rate limit is
// charged once for every recipient, and every email is persisted in one
// MULTI. It fails as a whole, storing nothing, when the rate limit refuses
// or storage fails. SMTP idempotency keys are not derived: the caller's
// Claim covers the whole.
func (s *Service) SubmitAll(ctx context.Context, k *store.Key, subs []Submission, opt AllOptions) ([]Result, error) {
	now := s.opt.Now().UTC()
	results := make([]Result, len(subs))
	var ps []*prepared
	var at []int // index in subs of each of ps
	for i, sub := range subs {
		sub.Key = k
		p, err := s.prepare(ctx, sub, false, now)
		if err != nil {
			results[i].Err = err
			s.opt.Metrics.observeSubmit(sub.Source, err)
			continue
		}
		ps, at = append(ps, p), append(at, i)
	}
	suppressed, err := s.admit(ctx, k, ps, now, true)
	if err != nil {
		s.observeAll(ps, err)
		return nil, err
	}
	shard := s.allShard(subs, opt)
	for _, p := range ps {
		p.shard = shard
	}
	var emails []store.NewEmail
	var messages []store.NewMessage
	for j, p := range ps {
		es, m, receipt, err := s.emailsOf(p, suppressed[j], now)
		if err == nil && p.sub.Send == nil && len(es) == 0 {
			err = ErrAllSuppressed
		}
		results[at[j]] = Result{Receipt: receipt, Err: err}
		if err == nil {
			emails = append(emails, es...)
			messages = append(messages, *m)
		}
	}
	if k.Mode == store.ModeLive && len(emails) > 0 {
		s.inFlowDelay(ctx)
	}
	popt := store.PersistOptions{Enqueue: k.Mode == store.ModeLive, Batch: opt.Batch, FanOut: opt.FanOut, Messages: messages}
	if opt.Claim != nil {
		resp, err := opt.Respond(results)
		if err != nil {
			return nil, err
		}
		if resp != nil {
			popt.Idempotency = opt.Claim.done(resp)
		}
	}
	if len(emails) == 0 && popt.Batch == nil && popt.FanOut == nil && popt.Idempotency == nil {
		return results, nil
	}
	if err := s.persist(ctx, emails, popt); err != nil {
		s.observeAll(ps, err)
		return nil, err
	}
	for j, p := range ps {
		s.opt.Metrics.observeSubmit(p.sub.Source, results[at[j]].Err)
	}
	return results, nil
}

// allShard is the one shard of SubmitAll's mail: that of the claim, else
// of the batch, else of ids made for the submissions (all in one shard),
// else one picked.
func (s *Service) allShard(subs []Submission, opt AllOptions) store.Shard {
	switch {
	case opt.Claim != nil:
		return opt.Claim.shard
	case opt.Batch != nil:
		return store.ShardOf(opt.Batch.ID)
	case opt.FanOut != nil:
		return store.ShardOf(opt.FanOut.BatchID)
	}
	for _, sub := range subs {
		if len(sub.EmailIDs) > 0 {
			return store.ShardOf(sub.EmailIDs[0])
		}
	}
	return s.store.PickShard()
}

func (s *Service) observeAll(ps []*prepared, err error) {
	for _, p := range ps {
		s.opt.Metrics.observeSubmit(p.sub.Source, err)
	}
}
