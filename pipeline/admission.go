package pipeline

import (
	"context"
	"slices"

	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// CheckAdmission answers what Submit would answer now for a message of
// key k from envelopeFrom to rcpts, before the message is built, charging
// and writing nothing: the sender (CheckSender), the account's pause
// (ErrAccountPaused), every recipient suppressed (ErrAllSuppressed) and,
// with limits, the rate and monthly limits (ErrRateLimited with its wait,
// ErrMonthlyLimit), in one round trip. Without limits it answers as
// Preview does, which does not reach the limits.
//
// A REST send asks it before it fetches attachment URLs, so that a send
// that is to be refused makes no outbound request (issue 18: a refused
// batch made 10,000 GETs). It is a look, not a reservation: Submit admits
// again and charges, and a send that passes here can still be refused
// there when other sends took the rate in between.
func (s *Service) CheckAdmission(ctx context.Context, k *store.Key, envelopeFrom string, rcpts []string, limits bool) error {
	if len(rcpts) == 0 {
		return ErrBadAddress.With("at least one recipient is required")
	}
	if err := s.CheckSender(ctx, k, envelopeFrom); err != nil {
		return err
	}
	for _, rcpt := range rcpts {
		if _, err := ParseAddress(rcpt); err != nil {
			return err
		}
	}
	mode := admitLook
	if limits {
		mode = admitCheck
	}
	suppressed, err := s.opt.RateLimit.run(ctx, s.rdb, k.AccountID, rcpts, s.opt.Now().UTC(), mode)
	if err != nil {
		return err
	}
	if !slices.Contains(suppressed, false) {
		return ErrAllSuppressed
	}
	return nil
}
