package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/testkit/resttest"
)

func TestRESTScheduleValidation(t *testing.T) {
	s := newServer(t)
	base := func(extra map[string]any) map[string]any {
		b := map[string]any{"from": "hello@" + senderDomain, "to": "user@" + rcptDomain, "subject": "Reminder", "html": "<p>Dont forget!</p>"}
		for k, v := range extra {
			b[k] = v
		}
		return b
	}
	now := time.Now().UTC()
	for name, c := range map[string]struct {
		extra map[string]any
		want  string
	}{
		"past":         {map[string]any{"scheduled_at": now.Add(-time.Minute).Format(time.RFC3339)}, "in the past"},
		"31 days":      {map[string]any{"scheduled_at": now.Add(31 * 24 * time.Hour).Format(time.RFC3339)}, "30 days"},
		"not a time":   {map[string]any{"scheduled_at": "tomorrow"}, "ISO 8601"},
		"no zone":      {map[string]any{"scheduledAt": now.Add(time.Hour).Format("2006-01-02T15:04:05")}, "ISO 8601"},
		"both, differ": {map[string]any{"scheduled_at": now.Add(time.Hour).Format(time.RFC3339), "scheduledAt": now.Add(2 * time.Hour).Format(time.RFC3339)}, "scheduledAt"},
		"wrong type":   {map[string]any{"scheduled_at": 1718445600}, "scheduled_at"},
	} {
		r := s.Call("POST", "/v1/emails", liveKey, nil, base(c.extra))
		if r.Code != 400 || !strings.Contains(r.ErrMessage(), c.want) {
			t.Errorf("%s: %d %s", name, r.Code, r.Body)
		}
	}

	// scheduledAt (camelCase) is accepted too; the email is "scheduled"
	// and GET shows when.
	at := now.Add(time.Hour).Truncate(time.Second)
	sent := s.SendOK(liveKey, base(map[string]any{"scheduledAt": at.Format(time.RFC3339)}), nil)
	if sent.Status != "scheduled" || sent.ScheduledAt == nil || !sent.ScheduledAt.Equal(at) {
		t.Fatalf("%+v", sent)
	}
	var e resttest.ScheduledEmail
	s.JSON("GET", "/v1/emails/"+sent.ID, liveKey, nil, &e)
	if e.Status != "scheduled" || e.ScheduledAt == nil || !e.ScheduledAt.Equal(at) || e.SentAt != nil {
		t.Fatalf("%+v", e)
	}
	// Cancel: cancelled, and cancelling again is still cancelled.
	for range 2 {
		r := s.Call("DELETE", "/v1/emails/"+sent.ID+"/schedule", liveKey, nil, nil)
		var c resttest.ScheduledEmail
		r.Decode(t, &c)
		if r.Code != 200 || c.Status != "cancelled" || c.CancelledAt == nil {
			t.Fatalf("cancel: %d %s", r.Code, r.Body)
		}
	}
	s.JSON("GET", "/v1/emails/"+sent.ID, liveKey, nil, &e)
	if e.Status != "cancelled" {
		t.Errorf("after cancel: %+v", e)
	}
	// The cancelled email is never released to delivery, even past its time.
	if n, err := s.p.Store.ReleaseDue(context.Background(), 0, at.Add(time.Hour), 100); err != nil || n != 0 {
		t.Errorf("released %d emails after the cancel (%v), want 0", n, err)
	}
	// An email sent at once cannot be cancelled: 409.
	now2 := s.SendOK(liveKey, base(nil), nil)
	s.markDelivered(now2.ID)
	if r := s.Call("DELETE", "/v1/emails/"+now2.ID+"/schedule", liveKey, nil, nil); r.Code != http.StatusConflict || r.ErrCode() != "conflict" {
		t.Errorf("cancel a sent email: %d %s", r.Code, r.Body)
	}
	if r := s.Call("DELETE", "/v1/emails/em_unknown/schedule", liveKey, nil, nil); r.Code != http.StatusNotFound {
		t.Errorf("cancel unknown: %d %s", r.Code, r.Body)
	}
}
