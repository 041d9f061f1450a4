package account

import (
	"context"
	"errors"
	"strings"

	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/dkim"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// maxDomains bounds the sending domains of one account.
const maxDomains = 50

// AddDomain creates a sending domain with a new DKIM key and the DNS records
// its owner must publish.
func (s *Service) AddDomain(ctx context.Context, k *store.Key, name string) (*store.Domain, error) {
	if err := pipeline.RequireAdmin(k); err != nil {
		return nil, err
	}
	name = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(name)), ".")
	if !pipeline.ValidDomainName(name) {
		return nil, pipeline.ErrInvalid.With("name: " + pipeline.Quote(name) + " is not a valid domain name")
	}
	// Before the key is generated: each domain costs an RSA key. Read,
	// then written: racing requests overshoot by their number only.
	if ds, err := s.store.ListDomains(ctx, k.AccountID); err != nil {
		return nil, pipeline.StorageError(err)
	} else if len(ds) >= maxDomains {
		return nil, pipeline.ErrConflict.Withf("an account may have at most %d sending domains; delete one first", maxDomains)
	}
	priv, txt, err := dkim.GenerateKey()
	if err != nil {
		return nil, err
	}
	d := &store.Domain{
		ID: store.NewID("dom"), Name: name, Status: store.VerifyPending, Selector: s.opt.DKIMSelector,
		PrivateKeyPEM: priv, CreatedAt: s.opt.Now().UTC(),
		DNSRecords: []store.DNSRecord{
			{Type: "TXT", Name: name, Value: "v=spf1 include:" + s.opt.SPFInclude + " ~all", Status: store.VerifyPending, Required: true},
			{Type: "TXT", Name: s.opt.DKIMSelector + "._domainkey." + name, Value: txt, Status: store.VerifyPending, Required: true},
			{Type: "TXT", Name: "_dmarc." + name, Value: "v=DMARC1; p=none;", Status: store.VerifyPending},
		},
	}
	defer s.changes.DomainChanged(ctx, k.AccountID, name)
	if err := s.store.AddDomain(ctx, k.AccountID, d); errors.Is(err, store.ErrExists) {
		return nil, pipeline.ErrConflict.With("domain " + name + " already exists")
	} else if err != nil {
		return nil, pipeline.StorageError(err)
	}
	return d, nil
}

// Domain returns one of the account's domains by id.
func (s *Service) Domain(ctx context.Context, k *store.Key, id string) (*store.Domain, error) {
	if err := pipeline.RequirePermission(k, store.PermissionFull); err != nil {
		return nil, err
	}
	d, err := s.store.DomainByID(ctx, k.AccountID, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, pipeline.NotFound("domain")
	}
	if err != nil {
		return nil, pipeline.StorageError(err)
	}
	return d, nil
}

// Domains lists the account's domains.
func (s *Service) Domains(ctx context.Context, k *store.Key) ([]*store.Domain, error) {
	if err := pipeline.RequirePermission(k, store.PermissionFull); err != nil {
		return nil, err
	}
	ds, err := s.store.ListDomains(ctx, k.AccountID)
	if err != nil {
		return nil, pipeline.StorageError(err)
	}
	return ds, nil
}

// DeleteDomain removes one of the account's domains.
func (s *Service) DeleteDomain(ctx context.Context, k *store.Key, id string) error {
	if err := pipeline.RequireAdmin(k); err != nil {
		return err
	}
	d, err := s.Domain(ctx, k, id)
	if err != nil {
		return err
	}
	defer s.changes.DomainChanged(ctx, k.AccountID, d.Name)
	if err := s.store.DeleteDomain(ctx, k.AccountID, d.Name); err != nil {
		return pipeline.StorageError(err)
	}
	return nil
}

// VerifyDomain looks up each DNS record through the configured resolver and
// marks the domain verified when every required record is published.
func (s *Service) VerifyDomain(ctx context.Context, k *store.Key, id string) (*store.Domain, error) {
	if err := pipeline.RequireAdmin(k); err != nil {
		return nil, err
	}
	d, err := s.Domain(ctx, k, id)
	if err != nil {
		return nil, err
	}
	verified := true
	for i := range d.DNSRecords {
		rec := &d.DNSRecords[i]
		values, err := s.opt.Resolver.LookupTXT(ctx, rec.Name)
		rec.Status = store.VerifyFailed
		if err == nil && recordPublished(rec.Value, values) {
			rec.Status = store.VerifyVerified
		}
		if rec.Required && rec.Status != store.VerifyVerified {
			verified = false
		}
	}
	d.Status = store.VerifyFailed
	if verified {
		d.Status = store.VerifyVerified
		now := s.opt.Now().UTC()
		d.VerifiedAt = &now
	}
	defer s.changes.DomainChanged(ctx, k.AccountID, d.Name)
	if err := s.store.PutDomain(ctx, k.AccountID, d); err != nil {
		return nil, pipeline.StorageError(err)
	}
	return d, nil
}

// recordPublished reports whether one of the TXT values found matches want.
// SPF matches on the include mechanism (owners merge it into their own SPF
// record), DKIM on the public key, DMARC on the version tag.
func recordPublished(want string, found []string) bool {
	norm := func(s string) string { return strings.Join(strings.Fields(strings.ToLower(s)), " ") }
	for _, f := range found {
		f = norm(f)
		switch {
		case strings.HasPrefix(want, "v=spf1"):
			include := strings.Fields(norm(want))[1]
			if strings.HasPrefix(f, "v=spf1") && strings.Contains(" "+f+" ", " "+include+" ") {
				return true
			}
		case strings.HasPrefix(want, "v=DMARC1"):
			if strings.HasPrefix(f, "v=dmarc1") {
				return true
			}
		default:
			if strings.ReplaceAll(f, " ", "") == strings.ReplaceAll(norm(want), " ", "") {
				return true
			}
		}
	}
	return false
}

// DomainForSending returns the account's verified domain record for the
// From: address of an email, for DKIM signing; nil if there is none.
func (s *Service) DomainForSending(ctx context.Context, accountID, from string) (*store.Domain, error) {
	d, err := s.store.DomainByName(ctx, accountID, pipeline.DomainOf(from))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return d, err
}
