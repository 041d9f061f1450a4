package main

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/internal/testkit/resttest"
)

// otherTenantDomain is verified by the second account of newTenant.
const otherTenantDomain = "other.test"

// newTenant makes an account named name as an operator does (pigeonpost
// accounts create), verifies domain for it, and returns a client with its
// first key.
func (s *stack) newTenant(name, domain string) *resttest.Client {
	s.t.Helper()
	var out strings.Builder
	env := map[string]string{"PIGEONPOST_REDIS_URL": s.redis.URL(), "PIGEONPOST_DNS_RESOLVER": s.dns.Addr()}
	if err := admin(context.Background(), []string{"accounts", "create", name}, &out, func(k string) string { return env[k] }); err != nil {
		s.t.Fatalf("accounts create: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	c := resttest.New(s.t, s.Client.URL, lines[len(lines)-1])
	c.From, c.To = "hello@"+domain, "user@"+rcptDomain
	c.VerifyDomain(s.dns, domain)
	return c
}

// S18: a key may send only as the domains its own account verified. With
// a domain verified by another tenant, the envelope (MAIL FROM) and the
// header From are each refused, 550 5.7.1 over SMTP and 403 over REST,
// and nothing is delivered; the owner sends from it. The policy between
// envelope and header is: each must be on a domain of the account; they
// need not be the same domain.
func TestSenderOfAnotherTenant(t *testing.T) {
	s := startStack(t)
	b := s.newTenant("tenant-b", otherTenantDomain)
	s.VerifyDomain(s.dns, "second.test")
	foreign, own, to := "ceo@"+otherTenantDomain, "hello@"+senderDomain, "user@"+rcptDomain

	// SMTP: the envelope, at MAIL FROM.
	c := s.smtpClient(true, liveKey)
	testkit.WantSMTPError(t, c.Mail(foreign, nil), 550, smtp.EnhancedCode{5, 7, 1})
	testkit.WantSMTPError(t, c.Mail("ceo@sub."+otherTenantDomain, nil), 550, smtp.EnhancedCode{5, 7, 1})
	testkit.WantSMTPError(t, c.Mail("ceo@"+strings.ToUpper(otherTenantDomain), nil), 550, smtp.EnhancedCode{5, 7, 1})
	// The null sender names no domain of the account: refused too.
	if se, ok := c.Mail("", nil).(*smtp.SMTPError); !ok || se.Code/100 != 5 {
		t.Errorf("MAIL FROM:<>: %v, want a permanent refusal", se)
	}
	// SMTP: the header, at DATA, under an envelope of the account's own.
	_, err := testkit.SendMail(s.smtpClient(true, liveKey), own, []string{to}, testkit.SimpleMessage(foreign, to, "spoof"))
	testkit.WantSMTPError(t, err, 550, smtp.EnhancedCode{5, 7, 1})
	// REST.
	r := s.Call("POST", "/v1/emails", liveKey, nil, map[string]any{"from": foreign, "to": to, "subject": "s", "text": "t"})
	if r.Code != http.StatusForbidden || r.ErrCode() == "" {
		t.Errorf("REST with another tenant's domain: %d %s", r.Code, r.Body)
	}
	r = s.Call("POST", "/v1/emails", liveKey, nil, map[string]any{"from": "Boss <" + foreign + ">", "to": to, "subject": "s", "text": "t"})
	if r.Code != http.StatusForbidden {
		t.Errorf("REST with another tenant's domain and a name: %d %s", r.Code, r.Body)
	}
	s.deliveryIdle()
	if n := len(s.sink.Messages()); n != 0 {
		t.Fatalf("%d messages delivered from another tenant's domain", n)
	}

	// The owner sends from it; the account sends with an envelope on one
	// of its domains and a header From on another.
	if code := b.JSON("POST", "/v1/emails", b.Key, map[string]any{"from": foreign, "to": to, "subject": "s", "text": "t"}, nil); code != http.StatusOK {
		t.Errorf("the owner's send: %d", code)
	}
	reply, err := testkit.SendMail(s.smtpClient(true, liveKey), own, []string{to}, testkit.SimpleMessage("news@second.test", to, "mixed"))
	if err != nil {
		t.Fatalf("envelope and header on two of the account's domains: %v", err)
	}
	s.waitStatus(queuedID(t, reply), "delivered")
}
