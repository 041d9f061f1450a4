package pipeline

import (
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
		return time.Time{}, ErrInvalid.With(field + ": " + Quote(value) +
			" is not an ISO 8601 time with a time zone, e.g. 2025-06-15T10:00:00Z")

	}
	if t.IsZero() {
		// checkSchedule takes the zero time for "now"; written out, year 1
		// is in the past like any other.
		return time.Time{}, ErrInvalid.With(fmt.Sprintf("%s: %s is in the past", field, t.Format(time.RFC3339)))
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
		return ErrInvalid.With(fmt.Sprintf("%s: %s is more than %d days ahead", field, t.UTC().Format(time.RFC3339), MaxScheduleAhead/(24*time.Hour)))
	}
	return nil
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
