package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// MaxScheduleAhead is how far ahead an email may be scheduled.
const MaxScheduleAhead = 30 * 24 * time.Hour

// ParseSchedule reads an ISO 8601 (RFC 3339) time with a zone, e.g.
// "2025-06-15T10:00:00Z" or "2025-06-15T12:00:00+02:00", and checks that it
// is not in the past and at most 30 days ahead of now. "" means "now"
// (the zero time).
func ParseSchedule(field, value string, now time.Time) (time.Time, error) {
	value = strings.TrimSpace(value)
	if value == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, value)
	if err != nil {
		return time.Time{}, ErrInvalid.With(field + ": " + quoteShort(value) +
			" is not an ISO 8601 time with a time zone, e.g. 2025-06-15T10:00:00Z")

	}
	if err := checkSchedule(field, t, now); err != nil {
		return time.Time{}, err
	}
	return t.UTC(), nil
}

func checkSchedule(field string, t, now time.Time) error {
	if t.IsZero() {
		return nil
	}
	if t.Before(now) {
		return ErrInvalid.With(fmt.Sprintf("%s: %s is in the past", field, t.UTC().Format(time.RFC3339)))
	}
	if t.After(now.Add(MaxScheduleAhead)) {
		return ErrInvalid.With(fmt.Sprintf("%s: %s is more than 30 days ahead", field, t.UTC().Format(time.RFC3339)))
	}
	return nil
}

// CancelSchedule cancels a scheduled email, and the other emails of its
// submission (one per recipient) with it. It is atomic against the release
// of due emails: either every one is cancelled and none is ever sent, or
// they have been released already and the answer is ErrConflict. Cancelling
// a cancelled email again succeeds.
func (s *Service) CancelSchedule(ctx context.Context, k *store.Key, id string) (*store.Email, error) {
	e, err := s.Email(ctx, k, id)
	if err != nil {
		return nil, err
	}
	if e.Status != store.StatusScheduled && e.Status != store.StatusCancelled {
		return nil, ErrConflict.With(fmt.Sprintf("email %s is not scheduled (status %q); only a scheduled email can be cancelled", id, e.Status))
	}
	ids, err := s.store.ScheduleGroup(ctx, id)
	if err != nil {
		return nil, storageError(err)
	}
	res, err := s.store.CancelScheduled(ctx, ids, s.opt.Now().UTC())
	if err != nil {
		return nil, storageError(err)
	}
	if !res.Cancelled {
		if res.Status == store.StatusScheduled {
			return nil, ErrConflict.With(fmt.Sprintf("email %s is already being sent; it can no longer be cancelled", res.EmailID))
		}
		return nil, ErrConflict.With(fmt.Sprintf("email %s is not scheduled (status %q); only a scheduled email can be cancelled", res.EmailID, res.Status))
	}
	e, err = s.store.Email(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, NotFound("email")
	}
	if err != nil {
		return nil, storageError(err)
	}
	return e, nil
}

// applySchedule makes e a scheduled email when at is set: it waits in the
// schedule, neither pending nor (for test keys) sent until its time.
func applySchedule(e *store.Email, at time.Time) {
	if at.IsZero() {
		return
	}
	at = at.UTC()
	e.Status, e.SentAt, e.ScheduledAt = store.StatusScheduled, nil, &at
}
