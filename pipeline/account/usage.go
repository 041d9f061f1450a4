package account

import (
	"context"
	"errors"
	"fmt"

	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// Usage is an account's emails of one calendar month (UTC) against its
// monthly limit. Every email counts, of /v1/emails, the sends API and
// SMTP alike, once per recipient not suppressed.
type Usage struct {
	Month string // 2006-01
	Used  int64
	Limit int64 // 0: none
}

// Usage returns the account's usage of the current month.
func (s *Service) Usage(ctx context.Context, k *store.Key) (*Usage, error) {
	month := pipeline.Month(s.opt.Now())
	used, own, err := s.store.Usage(ctx, k.AccountID, month)
	if err != nil {
		return nil, pipeline.StorageError(err)
	}
	limit := own
	if limit == 0 {
		limit = s.opt.MonthlyEmails
	}
	return &Usage{Month: month, Used: used, Limit: limit}, nil
}

// SetMonthlyLimit gives an account its own monthly email limit, over the
// configured default; 0 returns it to the default. It is the operator's
// (pigeonpost accounts limit), not a key's: a tenant does not set its own
// plan.
func (s *Service) SetMonthlyLimit(ctx context.Context, accountID string, limit int64) error {
	if limit < 0 {
		return pipeline.ErrInvalid.With(fmt.Sprintf("limit: must be 0 (the default) or more (got %d)", limit))
	}
	if err := s.store.SetMonthlyLimit(ctx, accountID, limit); err != nil {
		return pipeline.StorageError(err)
	}
	return nil
}

// AccountID returns the id of the account called name, as the operator
// names it (pigeonpost accounts create NAME); an unknown name is a 404.
func (s *Service) AccountID(ctx context.Context, name string) (string, error) {
	id, err := s.store.AccountByName(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return "", pipeline.NotFound("account " + pipeline.Quote(name))
	}
	if err != nil {
		return "", pipeline.StorageError(err)
	}
	return id, nil
}
