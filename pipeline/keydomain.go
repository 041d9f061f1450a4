package pipeline

import (
	"context"

	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// checkKeyDomain refuses a sender address outside the domain a restricted
// key is limited to. The domain is matched by id, so a domain deleted and
// added again (a new id) is not the one the key was made for.
func (s *Service) checkKeyDomain(ctx context.Context, k *store.Key, addr string) error {
	if k.DomainID == "" {
		return nil
	}
	domain := DomainOf(addr)
	d, err := s.senderDomain(ctx, k.AccountID, domain)
	if err != nil {
		return err
	}
	if d == nil || d.ID != k.DomainID {
		return keyDomain(domain)
	}
	return nil
}
