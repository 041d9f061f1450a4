package account

import (
	"context"
	"errors"
	"strings"

	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// KeyRequest asks for a new API key.
type KeyRequest struct {
	Name       string
	Mode       string // live or test
	Permission string // full or sending
	DomainID   string // optional: the key may send only from this domain of the account
}

// CreateAccount makes an account and its first key (full permission) and
// returns the key's secret, which is shown once.
func (s *Service) CreateAccount(ctx context.Context, name, mode string) (*store.Key, string, error) {
	if strings.TrimSpace(name) == "" {
		return nil, "", pipeline.ErrInvalid.With("name: an account name is required")
	}
	a, err := s.store.CreateAccount(ctx, name)
	if errors.Is(err, store.ErrExists) {
		return nil, "", pipeline.ErrConflict.With("account " + pipeline.Quote(name) + " already exists")
	}
	if err != nil {
		return nil, "", pipeline.StorageError(err)
	}
	return s.createKey(ctx, a.ID, KeyRequest{Name: "first key", Mode: mode, Permission: store.PermissionFull}, "")
}

// EnsureKey makes sure that secret is a full-permission key of the named
// account, creating both if needed (idempotent: the bootstrap key).
func (s *Service) EnsureKey(ctx context.Context, accountName, secret string) (*store.Key, error) {
	accountID, err := s.store.EnsureAccount(ctx, accountName)
	if err != nil {
		return nil, pipeline.StorageError(err)
	}
	mode := store.ModeLive
	if strings.HasPrefix(secret, "sp_test_") {
		mode = store.ModeTest
	}
	k, _, err := s.createKey(ctx, accountID, KeyRequest{Name: "bootstrap", Mode: mode, Permission: store.PermissionFull}, secret)
	return k, err
}

// CreateKey makes a new key in the caller's account and returns its secret.
// A key creates or revokes only keys that do no more than it may: a
// test-mode key test-mode keys, a key limited to a domain keys limited to
// it (mayManage).
func (s *Service) CreateKey(ctx context.Context, caller *store.Key, req KeyRequest) (*store.Key, string, error) {
	if err := pipeline.RequirePermission(caller, store.PermissionFull); err != nil {
		return nil, "", err
	}
	if req.Mode == "" {
		req.Mode = store.ModeLive
	}
	if caller.DomainID != "" && req.DomainID == "" {
		req.DomainID = caller.DomainID // what the caller may make, not an error
	}
	if err := mayManage(caller, &store.Key{Mode: req.Mode, DomainID: req.DomainID}); err != nil {
		return nil, "", err
	}
	return s.createKey(ctx, caller.AccountID, req, "")
}

// mayManage refuses a caller a key that could do what the caller cannot.
func mayManage(caller, k *store.Key) error {
	if caller.Mode == store.ModeTest && k.Mode != store.ModeTest {
		return pipeline.ErrForbidden.With("a test-mode key may create and revoke test-mode keys only")
	}
	if caller.DomainID != "" && k.DomainID != caller.DomainID {
		return pipeline.ErrForbidden.With("a key limited to a domain may create and revoke keys limited to that domain only")
	}
	return nil
}

func (s *Service) createKey(ctx context.Context, accountID string, req KeyRequest, secret string) (*store.Key, string, error) {
	if req.Name == "" {
		return nil, "", pipeline.ErrInvalid.With("name: a key name is required")
	}
	if req.Mode == "" {
		req.Mode = store.ModeLive
	}
	if req.Permission == "" {
		req.Permission = store.PermissionFull
	}
	if req.Mode != store.ModeLive && req.Mode != store.ModeTest {
		return nil, "", pipeline.ErrInvalid.With(`mode: must be "live" or "test"`)
	}
	if req.Permission != store.PermissionFull && req.Permission != store.PermissionSending {
		return nil, "", pipeline.ErrInvalid.With(`permission: must be "full" or "sending"`)
	}
	if err := s.checkKeyDomainID(ctx, accountID, req.DomainID); err != nil {
		return nil, "", err
	}
	if secret == "" {
		secret = store.NewKeySecret(req.Mode)
	}
	k, err := s.store.CreateKey(ctx, accountID, req.Name, req.Mode, req.Permission, secret, req.DomainID)
	if err != nil {
		return nil, "", pipeline.StorageError(err)
	}
	return k, secret, nil
}

// Keys lists the caller's account's keys (prefix and last four only).
func (s *Service) Keys(ctx context.Context, caller *store.Key) ([]*store.Key, error) {
	if err := pipeline.RequirePermission(caller, store.PermissionFull); err != nil {
		return nil, err
	}
	ks, err := s.store.ListKeys(ctx, caller.AccountID)
	if err != nil {
		return nil, pipeline.StorageError(err)
	}
	return ks, nil
}

// DeleteKey revokes a key of the caller's account, at once in every process.
func (s *Service) DeleteKey(ctx context.Context, caller *store.Key, keyID string) error {
	if err := pipeline.RequirePermission(caller, store.PermissionFull); err != nil {
		return err
	}
	target, err := s.store.KeyByID(ctx, keyID)
	if errors.Is(err, store.ErrNotFound) || err == nil && target.AccountID != caller.AccountID {
		return pipeline.NotFound("API key")
	}
	if err != nil {
		return pipeline.StorageError(err)
	}
	if err := mayManage(caller, target); err != nil {
		return err
	}
	err = s.store.DeleteKey(ctx, caller.AccountID, keyID)
	if errors.Is(err, store.ErrNotFound) {
		return pipeline.NotFound("API key")
	}
	if err != nil {
		return pipeline.StorageError(err)
	}
	s.changes.KeyChanged(ctx, keyID)
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
		return pipeline.ErrInvalid.With("domainId: " + pipeline.Quote(domainID) + " is not a domain of this account")
	}
	if err != nil {
		return pipeline.StorageError(err)
	}
	return nil
}
