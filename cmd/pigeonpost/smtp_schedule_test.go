package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/internal/testkit/resttest"
)

// An SMTP message with X-SP-Send-At is scheduled as a REST send with
// scheduled_at is: it waits (status scheduled, nothing at the sink) until
// its time, is delivered after it without the header, and can be
// cancelled, every recipient with it, by DELETE /v1/emails/:id/schedule.
// A time more than 30 days ahead is refused at DATA with 550 5.5.2.
func TestSMTPSendAtHeader(t *testing.T) {
	s := startStack(t)
	from := "hello@" + senderDomain
	later, cancelA, cancelB := "later@"+rcptDomain, "cancel-a@"+rcptDomain, "cancel-b@"+rcptDomain
	// A few seconds ahead, in whole seconds: an RFC 5322 date has no fraction.
	at := time.Now().Add(5 * time.Second).UTC().Truncate(time.Second)
	message := func(to []string, subject, sendAt string) string {
		return "From: " + from + "\r\nTo: " + strings.Join(to, ", ") + "\r\nSubject: " + subject + "\r\n" +
			"X-SP-Send-At: " + sendAt + "\r\n\r\nHello later.\r\n"
	}
	send := func(to []string, subject, sendAt string) (string, error) {
		return testkit.SendMail(s.smtpClient(true, liveKey), from, to, message(to, subject, sendAt))
	}

	// RFC 5322, as date -R writes it.
	reply, err := send([]string{later}, "later", at.In(time.FixedZone("", 3600)).Format(time.RFC1123Z))
	if err != nil {
		t.Fatal(err)
	}
	id := queuedID(t, reply)
	// RFC 3339, to two recipients: one email each, cancelled together.
	reply, err = send([]string{cancelA, cancelB}, "cancelled", at.Format(time.RFC3339))
	if err != nil {
		t.Fatal(err)
	}
	cancelID := queuedID(t, reply)

	for _, id := range []string{id, cancelID} {
		var e resttest.ScheduledEmail
		s.JSON("GET", "/v1/emails/"+id, liveKey, nil, &e)
		if e.Status != "scheduled" || e.ScheduledAt == nil || !e.ScheduledAt.Equal(at) {
			t.Fatalf("email %s: %+v, want scheduled at %v", id, e, at)
		}
	}
	if code := s.Call("DELETE", "/v1/emails/"+cancelID+"/schedule", liveKey, nil, nil).Code; code != http.StatusOK {
		t.Fatalf("DELETE /v1/emails/%s/schedule: %d", cancelID, code)
	}
	var list struct {
		Data []struct{ ID, ToAddress, Status string }
	}
	s.JSON("GET", "/v1/emails", liveKey, nil, &list)
	cancelled := 0
	for _, e := range list.Data {
		if e.ToAddress == cancelA || e.ToAddress == cancelB {
			cancelled++
			if e.Status != "cancelled" {
				t.Errorf("%s (%s): status %s after the cancel, want cancelled", e.ID, e.ToAddress, e.Status)
			}
		}
	}
	if cancelled != 2 {
		t.Errorf("%d emails listed to the cancelled message's recipients, want 2", cancelled)
	}

	t.Run("more than 30 days ahead is 550 5.5.2", func(t *testing.T) {
		far := time.Now().Add(31 * 24 * time.Hour).UTC().Format(time.RFC3339)
		_, err := send([]string{"far@" + rcptDomain}, "too far", far)
		r := testkit.WantSMTPError(t, err, 550, smtp.EnhancedCode{5, 5, 2})
		if want := "X-SP-Send-At: " + far + " is more than 30 days ahead"; r.Message != want {
			t.Errorf("reply %q, want %q", r.Message, want)
		}
	})

	// Nothing at the sink before the time: the sink is read before the
	// clock, so a message seen while the clock is still short of the time
	// was delivered early.
	testkit.WaitFor(t, "the scheduled time", func() bool {
		early := len(s.sink.To(later)) > 0
		due := !time.Now().Before(at)
		if early && !due {
			t.Fatalf("the message reached the sink before %v", at)
		}
		return due
	})
	s.waitStatus(id, "delivered")
	var e resttest.ScheduledEmail
	s.JSON("GET", "/v1/emails/"+id, liveKey, nil, &e)
	if e.SentAt == nil || e.SentAt.Before(at) {
		t.Errorf("sent at %v, scheduled for %v", e.SentAt, at)
	}
	got := s.sink.To(later)
	if len(got) != 1 {
		t.Fatalf("%d messages to %s at the sink, want 1", len(got), later)
	}
	if data := string(got[0].Data); strings.Contains(strings.ToLower(data), "x-sp-send-at") || !strings.Contains(data, "Hello later.") {
		t.Errorf("delivered:\n%s", data)
	}

	s.deliveryIdle() // a cancelled email released by mistake would be delivered by now
	for _, rcpt := range []string{cancelA, cancelB, "far@" + rcptDomain} {
		if n := len(s.sink.To(rcpt)); n != 0 {
			t.Errorf("%d messages to %s at the sink, want none", n, rcpt)
		}
	}
}
