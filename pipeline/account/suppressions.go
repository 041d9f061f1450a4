package account

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// SuppressionQuery asks for a page of a suppression list.
type SuppressionQuery struct {
	Cursor string // "" for the first page
	Limit  int    // 0: 100
	// Contains or Prefix (one of them) keep the addresses that contain it
	// or begin with it, case-insensitively. A search reads a bounded part
	// of the list per page (store.ListSuppressions): a page may hold fewer
	// than Limit, even none, and still have a next cursor.
	Contains, Prefix string
}

// maxSearchLen bounds a search of the suppression list.
const maxSearchLen = 320

// Suppressions lists a page of the account's suppression list; next is ""
// after the last page.
func (s *Service) Suppressions(ctx context.Context, k *store.Key, q SuppressionQuery) ([]store.Suppression, string, error) {
	cursor, limit := q.Cursor, q.Limit
	if err := pipeline.RequirePermission(k, store.PermissionFull); err != nil {
		return nil, "", err
	}
	if limit <= 0 {
		limit = 100
	}
	if limit > 1000 {
		return nil, "", pipeline.ErrInvalid.With("limit: must be between 1 and 1000")
	}
	var c uint64
	if cursor != "" {
		var err error
		if c, err = strconv.ParseUint(cursor, 10, 64); err != nil {
			return nil, "", pipeline.ErrInvalid.With("cursor: " + pipeline.Quote(cursor) + " is not a valid cursor")
		}
	}
	match := ""
	switch {
	case len(q.Contains) > maxSearchLen || len(q.Prefix) > maxSearchLen:
		return nil, "", pipeline.ErrInvalid.With("q, prefix: at most " + strconv.Itoa(maxSearchLen) + " characters")
	case q.Contains != "" && q.Prefix != "":
		return nil, "", pipeline.ErrInvalid.With("q, prefix: give one of them")
	case q.Contains != "":
		match = store.SuppressionGlob(q.Contains, false)
	case q.Prefix != "":
		match = store.SuppressionGlob(q.Prefix, true)
	}
	list, nc, err := s.store.ListSuppressions(ctx, k.AccountID, match, c, limit)
	if err != nil {
		return nil, "", pipeline.StorageError(err)
	}
	next := ""
	if nc != 0 {
		next = strconv.FormatUint(nc, 10)
	}
	return list, next, nil
}

// Suppress adds an address to the account's suppression list: no more mail
// is sent to it (Submit skips it and names it in Receipt.Suppressed).
func (s *Service) Suppress(ctx context.Context, k *store.Key, addr, reason string) (*store.Suppression, error) {
	if err := pipeline.RequirePermission(k, store.PermissionFull); err != nil {
		return nil, err
	}
	addr = strings.TrimSpace(addr)
	if _, err := pipeline.ParseAddress(addr); err != nil {
		return nil, pipeline.ErrBadAddress.With("email: " + pipeline.AsError(err).Message)
	}
	if reason == "" {
		reason = "manual"
	}
	if utf8.RuneCountInString(reason) > 100 {
		return nil, pipeline.ErrInvalid.With("reason: must be at most 100 characters")
	}
	if err := pipeline.CheckPrintable("reason", reason); err != nil {
		return nil, err
	}
	if err := s.store.Suppress(ctx, k.AccountID, addr, reason); err != nil {
		return nil, pipeline.StorageError(err)
	}
	sp, err := s.store.Suppression(ctx, k.AccountID, addr)
	if err != nil {
		return nil, pipeline.StorageError(err)
	}
	return sp, nil
}

// Unsuppress removes an address from the account's suppression list.
func (s *Service) Unsuppress(ctx context.Context, k *store.Key, addr string) error {
	if err := pipeline.RequirePermission(k, store.PermissionFull); err != nil {
		return err
	}
	err := s.store.Unsuppress(ctx, k.AccountID, strings.TrimSpace(addr))
	if errors.Is(err, store.ErrNotFound) {
		return pipeline.NotFound("suppression")
	}
	if err != nil {
		return pipeline.StorageError(err)
	}
	return nil
}
