package main

import (
	"bytes"
	"context"
	"net/http"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/pigeonpost/pigeonpost/config"
	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/internal/testkit/resttest"
)

// The monthly limit (limits.monthly_emails, or the account's own from the
// CLI) counts REST and SMTP alike; over it REST answers 429
// monthly_limit_reached and SMTP 452 4.5.3, and nothing is stored.
func TestMonthlyLimitRESTAndSMTP(t *testing.T) {
	s := startStack(t, func(c *config.Config) {
		c.Limits.MonthlyEmails = 2
		c.HTTP.AdminListen = "127.0.0.1:0"
	})
	from, to := "hello@"+senderDomain, "user@"+rcptDomain
	send := func() int {
		return s.Call("POST", "/v1/emails", liveKey, nil, map[string]any{"from": from, "to": to, "subject": "x", "text": "y"}).Code
	}
	if code := send(); code != http.StatusOK {
		t.Fatalf("first send: %d", code)
	}
	c := s.smtpClient(true, liveKey)
	if _, err := testkit.SendMail(c, from, []string{to}, testkit.SimpleMessage(from, to, "second")); err != nil {
		t.Fatal(err)
	}
	_, err := testkit.SendMail(c, from, []string{to}, testkit.SimpleMessage(from, to, "third"))
	testkit.WantSMTPError(t, err, 452, smtp.EnhancedCode{4, 5, 3})
	r := s.Call("POST", "/v1/emails", liveKey, nil, map[string]any{"from": from, "to": to, "subject": "x", "text": "y"})
	if r.Code != http.StatusTooManyRequests || r.ErrCode() != "monthly_limit_reached" || r.Header.Get("Retry-After") == "" {
		t.Errorf("REST over the limit: %d %s, Retry-After %q", r.Code, r.Body, r.Header.Get("Retry-After"))
	}
	var u struct {
		Month            string
		Used             int64
		Limit, Remaining *int64
	}
	s.JSON("GET", "/api/v1/usage", liveKey, nil, &u)
	if u.Used != 2 || u.Limit == nil || *u.Limit != 2 || *u.Remaining != 0 {
		t.Errorf("usage %+v", u)
	}

	// The operator gives the account a limit of its own.
	var out bytes.Buffer
	env := func(k string) string {
		if k == "PIGEONPOST_REDIS_URL" {
			return s.redis.URL()
		}
		return ""
	}
	if err := run(context.Background(), []string{"accounts", "limit", "default", "3"}, &out, env); err != nil {
		t.Fatal(err)
	}
	if code := send(); code != http.StatusOK {
		t.Errorf("a send under the account's own limit: %d", code)
	}
	if code := send(); code != http.StatusTooManyRequests {
		t.Errorf("over the account's own limit: %d", code)
	}

	// And through the operator's API.
	admin := resttest.New(t, "http://"+s.addrs.Admin, "")
	if code := admin.JSON("PUT", "/admin/v1/accounts/default/monthly-limit", "", map[string]any{"monthlyLimit": 4}, &u); code != http.StatusOK ||
		u.Used != 3 || u.Limit == nil || *u.Limit != 4 {
		t.Fatalf("PUT monthly-limit: %d %+v", code, u)
	}
	if r := admin.Call("PUT", "/admin/v1/accounts/default/monthly-limit", "", nil, map[string]any{"monthlyLimit": -1}); r.Code != http.StatusBadRequest {
		t.Errorf("a negative limit: %d %s", r.Code, r.Body)
	}
	if code := send(); code != http.StatusOK {
		t.Errorf("a send under the limit set by the admin API: %d", code)
	}
	if code := send(); code != http.StatusTooManyRequests {
		t.Errorf("over the limit set by the admin API: %d", code)
	}
}
