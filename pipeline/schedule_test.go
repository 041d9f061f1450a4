package pipeline

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// smtpScheduled is an SMTP submission of a message with X-SP-Send-At.
func smtpScheduled(k *store.Key, sendAt, messageID string, to ...string) Submission {
	return Submission{Key: k, Source: "smtp", EnvelopeFrom: "hello@acme.test", Recipients: to,
		Message: []byte("From: hello@acme.test\r\nTo: " + strings.Join(to, ", ") + "\r\nSubject: later\r\n" +
			"Message-ID: <" + messageID + ">\r\nX-SP-Send-At: " + sendAt + "\r\n\r\nbody\r\n")}
}

// X-SP-Send-At schedules an SMTP message as REST's scheduledAt does: every
// recipient's email is scheduled, in one group (cancelled together), its
// body stored without the header; the same message sent again is the same
// submission (its stored receipt); a past time sends now; an explicit
// Submission.ScheduledAt wins over the header.
func TestSubmitSendAtHeader(t *testing.T) {
	svc, k := testService(t)
	ctx := context.Background()
	at := time.Now().Add(time.Hour).UTC().Truncate(time.Second)

	sub := smtpScheduled(k, at.Format(time.RFC1123Z), "later-1@acme.test", "a@example.test", "b@example.test")
	r, err := svc.Submit(ctx, sub)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != store.StatusScheduled || r.ScheduledAt == nil || !r.ScheduledAt.Equal(at) || len(r.IDs) != 2 {
		t.Fatalf("receipt %+v, want both scheduled at %v", r, at)
	}
	for _, id := range r.IDs {
		e, err := svc.store.Email(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if e.Status != store.StatusScheduled || e.ScheduledAt == nil || !e.ScheduledAt.Equal(at) || e.SentAt != nil {
			t.Errorf("email %s: status %s, scheduled at %v, sent at %v", id, e.Status, e.ScheduledAt, e.SentAt)
		}
		body, err := svc.store.Body(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(strings.ToLower(string(body)), "x-sp-send-at") {
			t.Errorf("email %s: X-SP-Send-At stored in the body:\n%s", id, body)
		}
		group, err := svc.store.ScheduleGroup(ctx, id)
		if err != nil || !slices.Equal(group, r.IDs) {
			t.Errorf("email %s: schedule group %v (%v), want %v", id, group, err, r.IDs)
		}
	}

	again, err := svc.Submit(ctx, sub)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Replayed || !slices.Equal(again.IDs, r.IDs) || again.Status != store.StatusScheduled {
		t.Errorf("the same message again: %+v, want the first receipt replayed", again)
	}

	past, err := svc.Submit(ctx, smtpScheduled(k, time.Now().Add(-time.Hour).Format(time.RFC3339), "late@acme.test", "c@example.test"))
	if err != nil {
		t.Fatalf("a past X-SP-Send-At was refused: %v", err)
	}
	if past.Status != store.StatusSent || past.ScheduledAt != nil {
		t.Errorf("a past X-SP-Send-At: %+v, want sent now", past)
	}

	explicit := at.Add(time.Hour)
	both := smtpScheduled(k, at.Format(time.RFC3339), "both@acme.test", "d@example.test")
	both.ScheduledAt = explicit
	r, err = svc.Submit(ctx, both)
	if err != nil {
		t.Fatal(err)
	}
	if r.ScheduledAt == nil || !r.ScheduledAt.Equal(explicit) {
		t.Errorf("ScheduledAt and X-SP-Send-At: scheduled at %v, want the explicit %v", r.ScheduledAt, explicit)
	}

	_, err = svc.Submit(ctx, smtpScheduled(k, time.Now().Add(MaxScheduleAhead+time.Hour).Format(time.RFC3339), "far@acme.test", "e@example.test"))
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("X-SP-Send-At beyond %v: %v, want ErrInvalid", MaxScheduleAhead, err)
	}
}

// Year 1 is the zero time, which checkSchedule takes for "now": written
// out, it is refused as in the past (issue 18).
func TestParseScheduleYearOne(t *testing.T) {
	now := time.Now()
	for _, v := range []string{"0001-01-01T00:00:00Z", "0001-01-01T00:00:00+00:00"} {
		if _, err := ParseSchedule("scheduled_at", v, now); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "in the past") {
			t.Errorf("%s: %v", v, err)
		}
	}
	if at, err := ParseSchedule("scheduled_at", "", now); err != nil || !at.IsZero() {
		t.Errorf(`"": %v %v`, at, err)
	}
}
