package account

import (
	"context"
	"encoding/base64"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// EmailFilter selects emails for GET /v1/emails, and sends for GET
// /v1/sends. Zero fields select all.
type EmailFilter struct {
	Status store.Status
	Tag    string
	To     string
	// Sends selects the emails the sends API made; BatchID and TemplateID
	// select among them.
	Sends      bool
	BatchID    string
	TemplateID string
	Since      time.Time // created at or after
	Until      time.Time // created at or before
	Cursor     string    // from the previous page's EmailPage.Next
	Limit      int       // 1–100, default 50
}

// EmailPage is one page of a listing; Next is "" after the last page.
type EmailPage struct {
	Emails []*store.Email
	Next   string
}

// maxScanned bounds the index entries one page reads while filtering: a
// rare match ends the page early with a cursor to go on from.
const maxScanned = 1000

// listCursor is where a listing stopped: the creation time (ms) of the last
// entry read and how many entries with that very time were read.
type listCursor struct {
	ms   int64
	skip int
}

func (c listCursor) encode() string {
	return base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf("%d:%d", c.ms, c.skip)))
}

func decodeCursor(s string) (listCursor, error) {
	bad := pipeline.ErrInvalid.With("cursor: " + pipeline.Quote(s) + " is not a valid cursor")
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return listCursor{}, bad
	}
	a, b, ok := strings.Cut(string(raw), ":")
	ms, err1 := strconv.ParseInt(a, 10, 64)
	skip, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || skip < 0 {
		return listCursor{}, bad
	}
	return listCursor{ms: ms, skip: skip}, nil
}

// ListEmails returns the account's emails that match f, newest first; to a
// sending key, only those it sent (as Email).
func (s *Service) ListEmails(ctx context.Context, k *store.Key, f EmailFilter) (*EmailPage, error) {
	if f.Limit == 0 {
		f.Limit = 50
	}
	if f.Limit < 1 || f.Limit > 100 {
		return nil, pipeline.ErrInvalid.With("limit: must be between 1 and 100")
	}
	if f.Status != "" && !slices.Contains(store.Statuses, f.Status) {
		return nil, pipeline.ErrInvalid.With("status: must be one of " + oneOf(store.Statuses))
	}
	cur := listCursor{ms: math.MaxInt64}
	if !f.Until.IsZero() {
		cur.ms = f.Until.UnixMilli()
	}
	if f.Cursor != "" {
		c, err := decodeCursor(f.Cursor)
		if err != nil {
			return nil, err
		}
		cur = c
	}
	minMs := int64(math.MinInt64)
	if !f.Since.IsZero() {
		minMs = f.Since.UnixMilli()
	}
	var indexes []string
	switch {
	case f.BatchID != "":
		indexes = []string{store.BatchEmailsKey(f.BatchID)} // its emails are the account's: matches checks
	default:
		indexes = s.store.EmailIndexes(ctx, k.AccountID, f.Sends || f.TemplateID != "")
	}
	page := &EmailPage{Emails: []*store.Email{}}
	scanned := 0
	for scanned < maxScanned {
		batch, err := s.store.ScanEmails(ctx, indexes, cur.ms, minMs, cur.skip, min(200, maxScanned-scanned))
		if err != nil {
			return nil, pipeline.StorageError(err)
		}
		if len(batch) == 0 {
			return page, nil // the end
		}
		for _, se := range batch {
			scanned++
			if se.Created == cur.ms {
				cur.skip++
			} else {
				cur = listCursor{ms: se.Created, skip: 1}
			}
			if se.Email != nil && se.Email.AccountID == k.AccountID && pipeline.MayRead(k, se.Email) && f.matches(se.Email) {
				page.Emails = append(page.Emails, se.Email)
				if len(page.Emails) == f.Limit {
					page.Next = cur.encode()
					return page, nil
				}
			}
		}
	}
	page.Next = cur.encode() // scan budget spent: go on from here
	return page, nil
}

func (f EmailFilter) matches(e *store.Email) bool {
	if f.Status != "" && e.Status != f.Status {
		return false
	}
	if f.To != "" && !strings.EqualFold(e.ToAddress, f.To) {
		return false
	}
	if f.Tag != "" && !slices.Contains(e.Tags, f.Tag) {
		return false
	}
	if f.TemplateID != "" && (e.Send == nil || e.Send.TemplateID != f.TemplateID) {
		return false
	}
	return true
}

// oneOf lists the values a field may take, for an error message.
func oneOf[T ~string](values []T) string {
	s := make([]string, len(values))
	for i, v := range values {
		s[i] = string(v)
	}
	return strings.Join(s, ", ")
}
