package main

import (
	"testing"

	"github.com/emersion/go-smtp"
	"github.com/pigeonpost/pigeonpost/internal/testkit"
)

// A key limited to one domain sends only from it over SMTP too, and the
// From header counts, not only the envelope. (The REST side is api's
// TestRESTKeyDomainRestriction.)
func TestKeyDomainRestrictionOverSMTP(t *testing.T) {
	s := startStack(t)
	s.VerifyDomain(s.dns, "other.test")
	var domains struct{ Data []struct{ ID, Name string } }
	s.JSON("GET", "/v1/domains", liveKey, nil, &domains)
	acmeID := ""
	for _, d := range domains.Data {
		if d.Name == senderDomain {
			acmeID = d.ID
		}
	}
	key, _ := s.CreateKey(map[string]any{"name": "acme only", "permission": "sending", "domainId": acmeID})
	to := "user@" + rcptDomain
	c := s.smtpClient(true, key)
	testkit.WantSMTPError(t, c.Mail("hello@other.test", nil), 550, smtp.EnhancedCode{5, 7, 1})
	_, err := testkit.SendMail(s.smtpClient(true, key), "hello@"+senderDomain, []string{to}, testkit.SimpleMessage("hello@other.test", to, "x"))
	testkit.WantSMTPError(t, err, 550, smtp.EnhancedCode{5, 7, 1})
	if _, err := testkit.SendMail(s.smtpClient(true, key), "hello@"+senderDomain, []string{to}, testkit.SimpleMessage("hello@"+senderDomain, to, "x")); err != nil {
		t.Errorf("own domain over SMTP: %v", err)
	}
}
