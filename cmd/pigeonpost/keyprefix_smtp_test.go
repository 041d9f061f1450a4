package main

import (
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
)

// SMTP AUTH takes a key written with Pigeon Perch's prefix, pp_live_X for
// the key sp_live_X, in PLAIN and LOGIN alike, and the message is the key's
// account's (the REST side is api's TestRESTPigeonPerchKeyPrefix).
func TestPigeonPerchKeyPrefixOverSMTP(t *testing.T) {
	s := startStack(t)
	ppLive := "pp_live_" + strings.TrimPrefix(liveKey, "sp_live_")
	to := "user@" + rcptDomain
	from := "hello@" + senderDomain
	reply, err := testkit.SendMail(s.smtpClient(true, ppLive), from, []string{to}, testkit.SimpleMessage(from, to, "pp plain"))
	if err != nil {
		t.Fatalf("send after AUTH PLAIN with pp_live_: %v", err)
	}
	var got emailResp
	if code := s.JSON("GET", "/v1/emails/"+queuedID(t, reply), liveKey, nil, &got); code != 200 {
		t.Errorf("the email sent with pp_live_ read with sp_live_: %d", code)
	}

	c := s.smtpClient(true, "")
	if err := c.Auth(sasl.NewLoginClient("apikey", ppLive)); err != nil {
		t.Errorf("AUTH LOGIN with pp_live_: %v", err)
	}

	c = s.smtpClient(true, "")
	testkit.WantSMTPError(t, c.Auth(sasl.NewPlainClient("", "apikey", "pp_test_"+strings.TrimPrefix(liveKey, "sp_live_"))), 535, smtp.EnhancedCode{5, 7, 8})
}
