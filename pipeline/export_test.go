package pipeline

import "context"

// SenderDomain gives the external tests the id of the account's domain as
// the submission's cache holds it ("" for none).
func (s *Service) SenderDomain(ctx context.Context, accountID, domain string) (string, error) {
	d, err := s.senderDomain(ctx, accountID, domain)
	if d == nil {
		return "", err
	}
	return d.ID, err
}
