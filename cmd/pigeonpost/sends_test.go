package main

import (
	"net/http"
	"net/mail"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/pigeonpost/pigeonpost/config"
	"github.com/pigeonpost/pigeonpost/internal/testkit"
)

// A send through the whole gateway: rendered from a template for a contact
// made on first use, delivered with RFC 8058's List-Unsubscribe headers,
// and unsubscribed by the mail client's one-click POST, which a webhook
// reports; the next send to the contact is recorded and not delivered.
func TestSendDeliveredAndUnsubscribedInOneClick(t *testing.T) {
	s := webhookStack(t)
	recv := startReceiver(t)
	_, secret := s.CreateWebhook(recv.srv.URL+"/hooks", "email.unsubscribed")
	var tpl struct{ ID string }
	s.JSON("POST", "/v1/templates", liveKey, map[string]any{"name": "shipped", "from": "Acme <hello@" + senderDomain + ">",
		"subject": "Order {{order_id}} shipped", "html": "<p>Hi {{first_name | default: \"there\"}}, track it at {{tracking_url}}</p>"}, &tpl)

	var sent struct{ ID, ContactID, Status string }
	r := s.Call("POST", "/api/v1/sends", "", map[string]string{"X-API-Key": strings.Replace(liveKey, "sp_", "pp_", 1)},
		map[string]any{"templateId": tpl.ID, "to": "customer@" + rcptDomain,
			"personalizations": map[string]any{"order_id": "ORD-12345", "tracking_url": "https://track.example.test/abc"}})
	if r.Code != http.StatusOK {
		t.Fatalf("send: %d %s", r.Code, r.Body)
	}
	r.Decode(t, &sent)
	got := s.sink.Wait(t, 1, 20*time.Second)[0]
	m, err := mail.ReadMessage(strings.NewReader(string(got.Data)))
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get("Subject") != "Order ORD-12345 shipped" || !strings.Contains(string(got.Data), "Hi there, track it at https://track.example.test/abc") {
		t.Errorf("delivered:\n%s", got.Data)
	}
	if m.Header.Get("List-Unsubscribe-Post") != "List-Unsubscribe=One-Click" || !strings.Contains(strings.Join(strings.Fields(m.Header.Get("DKIM-Signature")), ""), ":List-Unsubscribe:List-Unsubscribe-Post;") {
		t.Errorf("the one-click headers are missing or not signed:\n%s", got.Data)
	}
	s.waitStatus(sent.ID, "delivered")

	// The mail client POSTs to the https link of the header (RFC 8058 §3.2).
	var link string
	for _, part := range strings.Split(m.Header.Get("List-Unsubscribe"), ",") {
		if p := strings.Trim(strings.TrimSpace(part), "<>"); strings.HasPrefix(p, "https://") {
			link = p
		}
	}
	u, err := url.Parse(link)
	if err != nil || link == "" {
		t.Fatalf("List-Unsubscribe %q", m.Header.Get("List-Unsubscribe"))
	}
	resp, err := http.Post(s.URL+u.Path, "application/x-www-form-urlencoded", strings.NewReader("List-Unsubscribe=One-Click"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("one-click POST: %d", resp.StatusCode)
	}
	s.webhooksIdle()
	hooks := recv.requests("email.unsubscribed")
	if len(hooks) != 1 || !strings.Contains(string(hooks[0].body), `"contactId":"`+sent.ContactID+`"`) {
		t.Fatalf("webhooks: %+v", hooks)
	}
	checkSigned(t, hooks[0], secret)

	var next struct{ ID, Status string }
	s.JSON("POST", "/v1/sends", liveKey, map[string]any{"templateId": tpl.ID, "to": sent.ContactID,
		"personalizations": map[string]any{"order_id": "2", "tracking_url": "x"}}, &next)
	if next.Status != "suppressed" {
		t.Errorf("send after unsubscribing: %+v", next)
	}
	s.deliveryIdle()
	if n := len(s.sink.Messages()); n != 1 {
		t.Errorf("%d messages delivered, want 1", n)
	}
}

// A send that hard-bounces marks its contact bounced; the next send to it
// is recorded as suppressed.
func TestSendHardBounceMarksContactBounced(t *testing.T) {
	s := startStack(t)
	s.sink.Reply("rcpt", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}, 1)
	var tpl struct{ ID string }
	s.JSON("POST", "/v1/templates", liveKey, map[string]any{"name": "t", "from": "hello@" + senderDomain, "subject": "s", "text": "t"}, &tpl)
	var sent struct{ ID, ContactID string }
	s.JSON("POST", "/v1/sends", liveKey, map[string]any{"templateId": tpl.ID, "to": "gone@" + rcptDomain}, &sent)
	s.waitStatus(sent.ID, "bounced")
	// The worker marks the contact right after the email.
	testkit.WaitFor(t, "the contact bounced", func() bool {
		var c struct{ Status string }
		s.JSON("GET", "/v1/contacts/"+sent.ContactID, liveKey, nil, &c)
		return c.Status == "bounced"
	})
	var next struct{ Status string }
	s.JSON("POST", "/v1/sends", liveKey, map[string]any{"templateId": tpl.ID, "to": sent.ContactID}, &next)
	if next.Status != "suppressed" {
		t.Errorf("send after the bounce: %+v", next)
	}
}

// With smtp.mailbox_listen, List-Unsubscribe carries a mailto too, and
// the mail a client sends to it unsubscribes the contact.
func TestSendUnsubscribedByMail(t *testing.T) {
	s := startStack(t, func(c *config.Config) { c.SMTP.MailboxListen = "127.0.0.1:0" })
	var tpl struct{ ID string }
	s.JSON("POST", "/v1/templates", liveKey, map[string]any{"name": "t", "from": "hello@" + senderDomain, "subject": "s", "text": "t"}, &tpl)
	var sent struct{ ID, ContactID string }
	s.JSON("POST", "/v1/sends", liveKey, map[string]any{"templateId": tpl.ID, "to": "reader@" + rcptDomain}, &sent)
	m, err := mail.ReadMessage(strings.NewReader(string(s.sink.Wait(t, 1, 20*time.Second)[0].Data)))
	if err != nil {
		t.Fatal(err)
	}
	var mailto *url.URL
	for _, part := range strings.Split(m.Header.Get("List-Unsubscribe"), ",") {
		if p := strings.Trim(strings.TrimSpace(part), "<>"); strings.HasPrefix(p, "mailto:") {
			mailto, _ = url.Parse(p)
		}
	}
	if mailto == nil || mailto.Opaque != "unsubscribe@"+s.cfg.SMTP.Hostname {
		t.Fatalf("List-Unsubscribe: %q", m.Header.Get("List-Unsubscribe"))
	}
	// What a mail client sends for the mailto, relayed by its provider.
	subject := mailto.Query().Get("subject")
	c := testkit.DialSMTP(t, s.addrs.Mailbox, testkit.SMTPStartTLS, "")
	if _, err := testkit.SendMail(c, "reader@"+rcptDomain, []string{mailto.Opaque},
		"From: reader@"+rcptDomain+"\r\nTo: "+mailto.Opaque+"\r\nSubject: "+subject+"\r\n\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	var contact struct{ Status string }
	s.JSON("GET", "/v1/contacts/"+sent.ContactID, liveKey, nil, &contact)
	if contact.Status != "unsubscribed" {
		t.Errorf("contact %q after the mail", contact.Status)
	}
}
