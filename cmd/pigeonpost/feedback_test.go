package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/mail"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/pigeonpost/pigeonpost/config"
	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/tracking"
)

// fixtureFor returns a report of pipeline/feedback/testdata about the
// delivered message m: the fixture's original names m by its
// X-Pigeonpost-Id, as the original a real reporter returns does.
func fixtureFor(t *testing.T, name string, m testkit.Received) []byte {
	t.Helper()
	raw, err := os.ReadFile("../../pipeline/feedback/testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
	if err != nil {
		t.Fatal(err)
	}
	id := msg.Header.Get(tracking.FeedbackHeader)
	if id == "" {
		t.Fatalf("the delivered message has no %s header", tracking.FeedbackHeader)
	}
	const fixtureID = "em_test1.Zm9vYmFyYmF6cXV1eDEyMzQ1Ng"
	if !bytes.Contains(raw, []byte(fixtureID)) {
		t.Fatalf("%s does not hold the id to replace", name)
	}
	return bytes.ReplaceAll(raw, []byte(fixtureID), []byte(id))
}

// TestReportsComplaintsAndLateBounces is issue 13's item 3 on the whole
// stack: real-format reports about delivered mail, to the reports mailbox
// over SMTP and to POST /v1/inbound/fbl, find their email by the signed
// header delivery added; a complaint marks it complained, suppresses the
// address, fires email.complained and, over the complaint rate, pauses the
// account; a Postfix and an Exim DSN bounce theirs (and suppress a bad
// address); a repeated report changes nothing; a forged id names nothing.
func TestReportsComplaintsAndLateBounces(t *testing.T) {
	s := webhookStack(t, func(c *config.Config) {
		c.SMTP.MailboxListen = "127.0.0.1:0"
		c.SMTP.ReportsMailbox = "fbl@gateway.test"
		c.Reputation.MinVolume = 4
		c.Reputation.MaxComplaintRate = 0.1
	})
	recv := startReceiver(t)
	s.CreateWebhook(recv.srv.URL, "email.complained", "email.bounced", "account.paused")

	ids := map[string]string{} // recipient → email id
	for i := range 5 {
		to := fmt.Sprintf("reader%d@%s", i, rcptDomain)
		ids[to] = s.SendOK(liveKey, map[string]any{"from": s.From, "to": to, "subject": "s", "text": "t"}, nil).ID
		s.waitStatus(ids[to], "delivered")
	}
	delivered := map[string]testkit.Received{}
	for _, m := range s.sink.Wait(t, 5, 10*time.Second) {
		delivered[m.To[0]] = m
	}

	// A Yahoo-style ARF to the reports mailbox.
	c := testkit.DialSMTP(t, s.addrs.Mailbox, testkit.SMTPStartTLS, "")
	yahoo := fixtureFor(t, "arf-yahoo.eml", delivered["reader0@"+rcptDomain])
	if _, err := testkit.SendMail(c, "", []string{"fbl@gateway.test"}, string(yahoo)); err != nil {
		t.Fatalf("ARF to the reports mailbox: %v", err)
	}
	s.waitStatus(ids["reader0@"+rcptDomain], "complained")
	var sup struct{ Data []map[string]any }
	if s.JSON("GET", "/v1/suppressions", liveKey, nil, &sup); len(sup.Data) != 1 || sup.Data[0]["reason"] != "complaint" {
		t.Errorf("suppressions after the complaint: %v", sup.Data)
	}
	// One complaint in 5 deliveries is 20 %, over the 10 % set: paused.
	if r := s.reputation(); r.Status != "paused" || r.Pause == nil || r.Pause.Reason != "complaint_rate" {
		t.Errorf("reputation after the complaint: %+v", r)
	}

	type outcome struct {
		EmailID, Kind, Result, Reason string
		Suppressed                    bool
	}
	post := func(path string, body []byte) (int, outcome) {
		t.Helper()
		var o outcome
		r := s.Call("POST", path, liveKey, map[string]string{"Content-Type": "message/rfc822"}, body)
		_ = json.Unmarshal(r.Body, &o)
		return r.Code, o
	}
	// The same report again, over REST: nothing more.
	if code, o := post("/v1/inbound/fbl", yahoo); code != 200 || o.Result != "ignored" || o.EmailID != ids["reader0@"+rcptDomain] {
		t.Errorf("a repeated complaint: %d %+v", code, o)
	}
	// A complaint with the original's headers only.
	if code, o := post("/api/v1/inbound/fbl", fixtureFor(t, "arf-headers-only.eml", delivered["reader1@"+rcptDomain])); code != 200 ||
		o.Result != "complained" || o.Kind != "complaint" || !o.Suppressed {
		t.Errorf("a headers-only complaint: %d %+v", code, o)
	}
	// Late bounces: Postfix says 5.1.1; Exim says 5.0.0 and, in its
	// diagnostic, 550 5.1.1: both suppress.
	for _, c := range []struct{ fixture, to string }{{"dsn-postfix.eml", "reader2@"}, {"dsn-exim.eml", "reader3@"}} {
		code, o := post("/v1/inbound/bounces", fixtureFor(t, c.fixture, delivered[c.to+rcptDomain]))
		if code != 200 || o.Result != "bounced" || o.Kind != "delivery-status" || !o.Suppressed {
			t.Errorf("%s: %d %+v", c.fixture, code, o)
		}
		e := s.waitStatus(ids[c.to+rcptDomain], "bounced")
		if !strings.Contains(e.LastError, "5.1.1") {
			t.Errorf("%s: last error %q", c.fixture, e.LastError)
		}
	}
	// A delay report changes nothing.
	if code, o := post("/v1/inbound/bounces", fixtureFor(t, "dsn-delayed.eml", delivered["reader4@"+rcptDomain])); code != 200 || o.Result != "ignored" {
		t.Errorf("a delayed DSN: %d %+v", code, o)
	}
	if r := s.reputation(); r.Window.Complained != 2 || r.Window.Bounced != 2 {
		t.Errorf("window after the reports: %+v", r.Window)
	}

	// A forged id, an ordinary mail: refused, over REST and SMTP alike.
	forged := bytes.Replace(yahoo, []byte(ids["reader0@"+rcptDomain]), []byte(ids["reader4@"+rcptDomain]), 1)
	if r := s.Call("POST", "/v1/inbound/fbl", liveKey, nil, forged); r.Code != 404 {
		t.Errorf("a forged id: %d %s", r.Code, r.Body)
	}
	_, err := testkit.SendMail(c, "", []string{"fbl@gateway.test"}, string(forged))
	testkit.WantSMTPError(t, err, 550, smtp.EnhancedCode{5, 0, 0})
	plain := "From: a@b.test\r\nSubject: hello\r\n\r\nnot a report\r\n"
	if r := s.Call("POST", "/v1/inbound/fbl", liveKey, nil, []byte(plain)); r.Code != 400 || r.ErrCode() != "invalid_message" {
		t.Errorf("not a report: %d %s", r.Code, r.Body)
	}
	_, err = testkit.SendMail(c, "", []string{"fbl@gateway.test"}, plain)
	testkit.WantSMTPError(t, err, 550, smtp.EnhancedCode{5, 6, 0})

	s.webhooksIdle()
	var events []string
	for _, r := range recv.requests("") {
		var b struct{ Event string }
		_ = json.Unmarshal(r.body, &b)
		events = append(events, b.Event)
	}
	slices.Sort(events)
	if want := []string{"account.paused", "email.bounced", "email.bounced", "email.complained", "email.complained"}; !slices.Equal(events, want) {
		t.Errorf("webhooks %q, want %q", events, want)
	}
}

// A sending-only key cannot post reports: they change the suppression list.
func TestReportsNeedFullKey(t *testing.T) {
	s := startStack(t)
	secret, _ := s.CreateKey(map[string]any{"name": "app", "permission": "sending"})
	if r := s.Call("POST", "/v1/inbound/fbl", secret, nil, []byte("x")); r.Code != 403 {
		t.Errorf("a sending key: %d %s", r.Code, r.Body)
	}
}
