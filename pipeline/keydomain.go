package pipeline

import (
	"context"
	"errors"

	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// checkKeyDomain refuses a sender address outside the domain a restricted
// key is limited to. The domain is matched by id, so a domain deleted and
// added again (a new id) is not the one the key was made for.
func (s *Service) checkKeyDomain(ctx context.Context, k *store.Key, addr string) error {
	if k.DomainID == "" {
		return nil
	}
	domain := domainOf(addr)
	d, err := s.senderDomain(ctx, k.AccountID, domain)
	if err != nil {
		return err
	}
	if d.id != k.DomainID {
		return keyDomain(domain)
	}
	return nil
}

// checkKeyDomainID checks, when a key is created, that the domain it is to
// be limited to is one of the account's.
func (s *Service) checkKeyDomainID(ctx context.Context, accountID, domainID string) error {
	if domainID == "" {
		return nil
	}
	_, err := s.store.DomainByID(ctx, accountID, domainID)
	if errors.Is(err, store.ErrNotFound) {
		return ErrInvalid.With("domainId: " + quoteShort(domainID) + " is not a domain of this account")
	}
	if err != nil {
		return storageError(err)
	}
	return nil
}
