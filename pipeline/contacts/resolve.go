package contacts

import (
	"context"
	"strings"

	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// maxUpsertPasses bounds the retries of rows whose address changed hands
// between the read and the write (another request created or moved it).
const maxUpsertPasses = 5

// Resolve returns the contact of each recipient: to[i] is an email address
// (a contact created with status subscribed when the account has none for
// it) or a contact id ("ct_…"). errs[i] says why to[i] is not usable (a bad
// address: pipeline.ErrBadAddress; an unknown contact id: pipeline.ErrInvalid
// naming it), and cs[i] is then nil; err is a storage failure. Contacts of
// any status are returned: the caller decides what an unsubscribed one
// gets.
//
// It takes a few round trips whatever the number of recipients: one read of
// the addresses and the ids given, one of the contacts found with the
// creation of the others (one script), and, rarely, one more for an address
// another request created in between. Two Resolve of one new address at once
// make one contact.
func (s *Service) Resolve(ctx context.Context, accountID string, to []string) (cs []*Contact, errs []error, err error) {
	cs, errs = make([]*Contact, len(to)), make([]error, len(to))
	byID := map[string][]int{}    // contact id → positions in to
	byEmail := map[string][]int{} // email key → positions
	var emails []string           // distinct email keys, in order
	var ids []string              // distinct ids given, in order
	given := map[string]string{}  // email key → the address as first given
	for i, r := range to {
		r = strings.TrimSpace(r)
		if strings.HasPrefix(r, idPrefix) {
			if len(r) > maxIDBytes {
				errs[i] = pipeline.ErrInvalid.With("contact " + pipeline.Quote(r) + " not found")
				continue
			}
			if byID[r] == nil {
				ids = append(ids, r)
			}
			byID[r] = append(byID[r], i)
			continue
		}
		addr, perr := pipeline.ParseAddress(r)
		if perr != nil {
			errs[i] = perr
			continue
		}
		ek := emailKey(addr)
		if byEmail[ek] == nil {
			emails = append(emails, ek)
			given[ek] = addr
		}
		byEmail[ek] = append(byEmail[ek], i)
	}

	// Round trip 1: the addresses' ids, and the contacts given by id.
	found, err := s.store.ContactIDsByEmail(ctx, accountID, emails)
	if err != nil {
		return nil, nil, pipeline.StorageError(err)
	}
	hs, err := s.store.Contacts(ctx, accountID, ids)
	if err != nil {
		return nil, nil, pipeline.StorageError(err)
	}
	for j, id := range ids {
		c := fromHash(hs[j])
		for _, i := range byID[id] {
			if c == nil {
				errs[i] = pipeline.ErrInvalid.With("contact " + pipeline.Quote(id) + " not found")
			}
			cs[i] = c
		}
	}

	// Then: read the contacts found, create the others; repeat for an
	// address whose contact changed in between.
	pending := emails
	for pass := 0; len(pending) > 0; pass++ {
		if pass == maxUpsertPasses {
			return nil, nil, pipeline.ErrUnavailable.With("contacts are changing too fast; try again")
		}
		var readIDs, readKeys []string
		var rows []store.ContactUpsert
		var created []*Contact
		for j, ek := range pending {
			if id := found[j]; id != "" {
				readIDs, readKeys = append(readIDs, id), append(readKeys, ek)
				continue
			}
			c := &Contact{ID: store.NewID(contactIDPrefix), Email: given[ek], Status: Subscribed, Tags: []string{}, Fields: map[string]string{}}
			rows = append(rows, store.ContactUpsert{ID: c.ID, EmailKey: ek, New: true,
				Set: []string{hEmail, c.Email, hStatus, string(Subscribed), hTags, emptyTags}})
			created = append(created, c)
		}
		now := s.now()
		res, err := s.store.UpsertContacts(ctx, accountID, now, rows)
		if err != nil {
			return nil, nil, pipeline.StorageError(err)
		}
		hs, err := s.store.Contacts(ctx, accountID, readIDs)
		if err != nil {
			return nil, nil, pipeline.StorageError(err)
		}
		var retry, retryIDs []string
		for j, c := range created {
			if res[j] == store.UpsertCreated {
				c.CreatedAt, c.UpdatedAt = parseTime(now), parseTime(now)
				for _, i := range byEmail[rows[j].EmailKey] {
					cs[i] = c
				}
				continue
			}
			retry, retryIDs = append(retry, rows[j].EmailKey), append(retryIDs, res[j])
		}
		for j, ek := range readKeys {
			c := fromHash(hs[j])
			if c == nil || emailKey(c.Email) != ek {
				// Deleted or moved since the address was read.
				retry, retryIDs = append(retry, ek), append(retryIDs, "")
				continue
			}
			for _, i := range byEmail[ek] {
				cs[i] = c
			}
		}
		pending, found = retry, retryIDs
	}
	return cs, errs, nil
}
