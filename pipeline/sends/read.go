package sends

import (
	"context"
	"errors"

	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// Get returns one of the account's sends with its events (sent,
// delivered, opened, clicked, bounced, complained, unsubscribed ...); to a
// sending key, only one it made (as account.Service.Email).
func (s *Service) Get(ctx context.Context, k *store.Key, id string) (*store.Email, []store.Event, error) {
	e, err := s.store.Email(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (e.AccountID != k.AccountID || e.Send == nil || !pipeline.MayRead(k, e))) {
		return nil, nil, pipeline.NotFound("send")
	}
	if err != nil {
		return nil, nil, pipeline.StorageError(err)
	}
	evs, err := s.store.Events(ctx, id)
	if err != nil {
		return nil, nil, pipeline.StorageError(err)
	}
	return e, evs, nil
}

// BatchStatus is a batch with its sends counted by status.
type BatchStatus struct {
	*store.Batch
	Counts map[store.Status]int
}

// Batch returns one of the account's batches with its sends counted by
// status.
func (s *Service) Batch(ctx context.Context, k *store.Key, id string) (*BatchStatus, error) {
	b, err := s.store.Batch(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && b.AccountID != k.AccountID) {
		return nil, pipeline.NotFound("batch")
	}
	if err != nil {
		return nil, pipeline.StorageError(err)
	}
	counts, err := s.store.BatchStatusCounts(ctx, id)
	if err != nil {
		return nil, pipeline.StorageError(err)
	}
	return &BatchStatus{Batch: b, Counts: counts}, nil
}
