package main

import (
	"strings"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/config"
	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/internal/testkit/resttest"
)

// Whole-stack tests of tracking: what SMTP's tracking headers do to the
// delivered message. The REST and tracking endpoints' contract (hits, bot
// filtering, privacy mode, settings, tracking domains, events, analytics)
// is tested in api; the helpers here serve these and the webhook tests.

const (
	testTrackingSecret = "integration-test-tracking-secret"
	browserUA          = resttest.BrowserUA
)

// trackingStack starts a stack whose tracking secret is known (so tests can
// forge valid ids of unknown emails) and whose timing rule is off unless a
// mutation turns it on: hits in these tests come right after delivery.
func trackingStack(t *testing.T, mutate ...func(*config.Config)) *stack {
	t.Helper()
	return startStack(t, append([]func(*config.Config){func(c *config.Config) {
		c.Tracking.Secret = testTrackingSecret
		c.Tracking.BotWindow = 0
	}}, mutate...)...)
}

// An HTML mail sent through SMTP with both tracking headers arrives with
// the pixel and rewritten links, the headers gone.
func TestTrackingSMTPHeaders(t *testing.T) {
	s := trackingStack(t)
	from, to := "hello@"+senderDomain, "user@"+rcptDomain
	msg := "From: " + from + "\r\nTo: " + to + "\r\nSubject: t\r\nX-SP-Track-Opens: true\r\nX-SP-Track-Clicks: yes\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nShop at https://shop.example.test/p.\r\n" +
		"--b\r\nContent-Type: text/html\r\n\r\n<body><a href=\"https://shop.example.test/p\">shop</a></body>\r\n--b--\r\n"
	reply, err := testkit.SendMail(s.smtpClient(true, liveKey), from, []string{to}, msg)
	if err != nil {
		t.Fatal(err)
	}
	id := queuedID(t, reply)
	got := string(s.sink.Wait(t, 1, 20*time.Second)[0].Data)
	for _, want := range []string{"/v1/track/open/" + id, "Shop at https://t.gateway.test/v1/track/click/" + id + ".0.", `<a href="https://t.gateway.test/v1/track/click/` + id + ".1."} {
		if !strings.Contains(got, want) {
			t.Errorf("destination copy lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "X-SP-Track") || strings.Contains(got, "https://shop.example.test") {
		t.Errorf("headers or an untracked link reached the destination:\n%s", got)
	}
}

// TestTrackingUnparsablePartWarns: a part the rewriter cannot decode is
// delivered unchanged and leaves a "warning" event on the email.
func TestTrackingUnparsablePartWarns(t *testing.T) {
	s := startStack(t)
	from, to := "hello@"+senderDomain, "user@"+rcptDomain
	msg := "From: " + from + "\r\nTo: " + to + "\r\nSubject: broken\r\nX-SP-Track-Opens: true\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n"
	reply, err := testkit.SendMail(s.smtpClient(true, liveKey), from, []string{to}, msg)
	if err != nil {
		t.Fatal(err)
	}
	id := queuedID(t, reply)
	got := s.sink.Wait(t, 1, 20*time.Second)[0]
	if !strings.Contains(string(got.Data), "!!!not base64!!!") {
		t.Errorf("the unparsable part was changed:\n%s", got.Data)
	}
	var events struct {
		Data []struct {
			Type string
			Data map[string]string
		}
	}
	s.JSON("GET", "/v1/emails/"+id+"/events", liveKey, nil, &events)
	for _, ev := range events.Data {
		if ev.Type == "warning" && ev.Data["message"] != "" {
			return
		}
	}
	t.Errorf("no warning event: %+v", events.Data)
}
