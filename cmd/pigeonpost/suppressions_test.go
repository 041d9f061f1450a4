package main

import (
	"net/http"
	"testing"

	"github.com/emersion/go-smtp"
	"github.com/pigeonpost/pigeonpost/internal/testkit"
)

// A recipient suppressed over REST is refused over SMTP too. (The REST
// side of suppressions is api's TestRESTSuppressions.)
func TestSuppressionAppliesToSMTP(t *testing.T) {
	s := startStack(t)
	from, bounced := "hello@"+senderDomain, "bounced@"+rcptDomain
	if r := s.Call("POST", "/v1/suppressions", liveKey, nil, map[string]string{"email": "Bounced@" + rcptDomain, "reason": "manual"}); r.Code != http.StatusCreated {
		t.Fatalf("add: %d %s", r.Code, r.Body)
	}
	c := s.smtpClient(true, liveKey)
	_, err := testkit.SendMail(c, from, []string{bounced}, testkit.SimpleMessage(from, bounced, "x"))
	testkit.WantSMTPError(t, err, 550, smtp.EnhancedCode{5, 1, 1})
}
