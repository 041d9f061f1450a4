package contacts

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

func parseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

// ListQuery selects a page of contacts.
type ListQuery struct {
	Status Status // "" for any
	Email  string // exact, case-insensitive; "" for any
	Tag    string // "" for any
	Limit  int    // 1–100; 0 means 20
	Cursor string // the next cursor of the previous page; "" for the first
}

// Paging bounds.
const (
	defaultLimit = 20
	maxLimit     = 100
	// scanChunk is how many contacts a filtered list reads per round trip,
	// and maxScan how many it reads per request at most: past it, the page
	// ends (perhaps short, even empty) with a cursor to go on from.
	scanChunk = 200
	maxScan   = 5000
)

// List returns a page of the account's contacts, newest first, that match
// q, and the cursor of the next page ("" after the last). A filtered page
// reads at most maxScan contacts, so it may hold fewer than the limit and
// still have a next cursor.
func (s *Service) List(ctx context.Context, k *store.Key, q ListQuery) ([]*Contact, string, error) {
	if err := pipeline.RequirePermission(k, store.PermissionFull); err != nil {
		return nil, "", err
	}
	if q.Limit == 0 {
		q.Limit = defaultLimit
	}
	if q.Limit < 1 || q.Limit > maxLimit {
		return nil, "", pipeline.ErrInvalid.With("limit: must be between 1 and 100")
	}
	if q.Status != "" {
		if err := checkStatus("status", q.Status); err != nil {
			return nil, "", err
		}
	}
	var after int64
	if q.Cursor != "" {
		n, err := strconv.ParseInt(q.Cursor, 10, 64)
		if err != nil || n < 1 {
			return nil, "", pipeline.ErrInvalid.With("cursor: " + pipeline.Quote(q.Cursor) + " is not a valid cursor")
		}
		after = n
	}
	match := func(c *Contact) bool {
		return (q.Status == "" || c.Status == q.Status) && (q.Tag == "" || hasTag(c, q.Tag)) &&
			(q.Email == "" || emailKey(c.Email) == emailKey(strings.TrimSpace(q.Email)))
	}
	if q.Email != "" {
		// At most one contact: look it up.
		ids, err := s.store.ContactIDsByEmail(ctx, k.AccountID, []string{emailKey(strings.TrimSpace(q.Email))})
		if err != nil {
			return nil, "", pipeline.StorageError(err)
		}
		out := []*Contact{}
		if ids[0] == "" {
			return out, "", nil
		}
		hs, err := s.store.Contacts(ctx, k.AccountID, ids)
		if err != nil {
			return nil, "", pipeline.StorageError(err)
		}
		if c := fromHash(hs[0]); c != nil && match(c) && (after == 0 || c.seq < after) {
			out = append(out, c)
		}
		return out, "", nil
	}

	out := make([]*Contact, 0, q.Limit)
	filtered := q.Status != "" || q.Tag != ""
	for scanned := 0; ; {
		n := q.Limit + 1 // unfiltered: one more tells whether there is a next page
		if filtered {
			n = scanChunk
		}
		ids, seqs, err := s.store.ContactIndex(ctx, k.AccountID, after, true, n)
		if err != nil {
			return nil, "", pipeline.StorageError(err)
		}
		hs, err := s.store.Contacts(ctx, k.AccountID, ids)
		if err != nil {
			return nil, "", pipeline.StorageError(err)
		}
		for _, h := range hs {
			c := fromHash(h)
			if c == nil || !match(c) {
				continue
			}
			if len(out) == q.Limit {
				// One more match exists: the page ends before it.
				return out, strconv.FormatInt(out[len(out)-1].seq, 10), nil
			}
			out = append(out, c)
		}
		if len(ids) < n {
			return out, "", nil // the end of the index
		}
		after = seqs[len(seqs)-1]
		scanned += len(ids)
		if scanned >= maxScan {
			return out, strconv.FormatInt(after, 10), nil
		}
	}
}

func hasTag(c *Contact, tag string) bool {
	for _, t := range c.Tags {
		if t == tag {
			return true
		}
	}
	return false
}
