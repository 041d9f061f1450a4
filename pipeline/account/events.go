package account

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// EventFilter selects events for GET /v1/events.
type EventFilter struct {
	Type    string    // sent, delivered, … or email.sent, …; "" for all
	EmailID string    // "" for all emails
	Since   time.Time // zero for no lower bound
	Cursor  string    // nextCursor of the previous page; "" for the newest
	Limit   int       // 1..100; 0 means 50
}

// ListedEvent is one event as GET /v1/events shows it.
type ListedEvent struct {
	ID        string // stream id: unique, ordered
	Type      store.EventType
	EmailID   string
	Timestamp time.Time
	Data      map[string]string
}

// EventPage is one page of events, newest first.
type EventPage struct {
	Data []ListedEvent
	// Next continues the listing; "" when there is nothing older. A page
	// may hold fewer than the limit (even none) and still have one: each
	// request scans a bounded number of events.
	Next string
}

var streamIDPattern = regexp.MustCompile(`^[0-9]{1,20}-[0-9]{1,20}(-q[1-9][0-9]{0,2})?$`) // store.StreamEvent.EventID

// Bounds of one listing: entries read per round trip and in all.
const (
	eventScanBatch  = 200
	eventScanBudget = 5000
)

// ListEvents lists the account's events, newest first, from its event
// stream (the last 100,000 events are kept). Filters are applied while
// scanning; a request reads at most eventScanBudget entries.
func (s *Service) ListEvents(ctx context.Context, k *store.Key, f EventFilter) (*EventPage, error) {
	wantType := store.EventType(strings.TrimPrefix(f.Type, "email."))
	if f.Type != "" {
		if !slices.Contains(store.ListedEventTypes, wantType) {
			return nil, pipeline.ErrInvalid.With("type: must be one of " + oneOf(store.ListedEventTypes))
		}
	}
	if f.Cursor != "" && !streamIDPattern.MatchString(f.Cursor) {
		return nil, pipeline.ErrInvalid.With("cursor: not a cursor returned by this API")
	}
	if f.Limit == 0 {
		f.Limit = 50
	}
	if f.Limit < 1 || f.Limit > 100 {
		return nil, pipeline.ErrInvalid.With("limit: must be between 1 and 100")
	}
	page := &EventPage{Data: []ListedEvent{}}
	cursor, scanned := f.Cursor, 0
	for scanned < eventScanBudget {
		batch, err := s.store.AccountEvents(ctx, k.AccountID, cursor, eventScanBatch)
		if err != nil {
			return nil, pipeline.StorageError(err)
		}
		for i, se := range batch {
			scanned++
			// Stream ids come from the Redis clock, timestamps from ours:
			// stop a minute past since, and filter on the timestamp.
			if !f.Since.IsZero() && store.StreamIDTime(se.StreamID).Before(f.Since.Add(-time.Minute)) {
				return page, nil
			}
			ev := se.Event
			if (f.Type == "" || ev.Type == wantType) && (f.EmailID == "" || ev.EmailID == f.EmailID) &&
				(f.Since.IsZero() || !ev.Timestamp.Before(f.Since)) {
				page.Data = append(page.Data, ListedEvent{ID: se.ID(), Type: ev.Type, EmailID: ev.EmailID, Timestamp: ev.Timestamp, Data: ev.Data})
			}
			if len(page.Data) == f.Limit {
				if i < len(batch)-1 || len(batch) == eventScanBatch {
					next := se.ID()
					page.Next = next
				}
				return page, nil
			}
		}
		if len(batch) < eventScanBatch {
			return page, nil // the start of the stream
		}
		cursor = batch[len(batch)-1].ID()
	}
	page.Next = cursor
	return page, nil
}
