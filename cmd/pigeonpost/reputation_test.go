package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/pigeonpost/pigeonpost/config"
	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/internal/testkit/resttest"
)

// reputationState is what GET /v1/reputation answers.
type reputationState struct {
	Status string `json:"status"`
	Pause  *struct {
		Reason string `json:"reason"`
		Window *struct {
			Sends, Delivered, Bounced, Complained int64
			BounceRate                            float64
		} `json:"window"`
	} `json:"pause"`
	Window struct{ Sends, Bounced, Complained int64 } `json:"window"`
	Held   int64                                      `json:"held"`
}

// reputationStack is webhookStack with the admin listener on and a guard
// that pauses at a bounce rate over 20 % of at least minVolume sends.
func reputationStack(t *testing.T, minVolume int64) (*stack, *resttest.Client) {
	s := webhookStack(t, func(c *config.Config) {
		c.HTTP.AdminListen = "127.0.0.1:0"
		c.Reputation.MinVolume = minVolume
		c.Reputation.MaxBounceRate = 0.2
		c.Reputation.MaxComplaintRate = 0.1
	})
	return s, resttest.New(t, "http://"+s.addrs.Admin, "")
}

func (s *stack) reputation() reputationState {
	s.t.Helper()
	var r reputationState
	if code := s.JSON("GET", "/api/v1/reputation", liveKey, nil, &r); code != 200 {
		s.t.Fatalf("GET /v1/reputation: %d", code)
	}
	return r
}

// TestReputationPausesOnBounces is issue 13's guard: a burst of 5xx from
// the destination pauses the account once its bounce rate over enough
// sends passes the limit; the pause refuses REST (403 account_paused) and
// SMTP (451 4.7.1), holds the mail already queued, is an event and a
// webhook, and shows its figures; the operator's API lifts it, and the
// held mail goes out.
func TestReputationPausesOnBounces(t *testing.T) {
	s, admin := reputationStack(t, 12)
	recv := startReceiver(t)
	_, _ = s.CreateWebhook(recv.srv.URL, "account.paused", "account.resumed")

	send := func(to string, extra map[string]any) string {
		body := map[string]any{"from": s.From, "to": to, "subject": "s", "text": "t"}
		for k, v := range extra {
			body[k] = v
		}
		return s.SendOK(liveKey, body, nil).ID
	}
	for i := range 8 {
		s.waitStatus(send(fmt.Sprintf("ok%d@%s", i, rcptDomain), nil), "delivered")
	}
	// Due after the pause: it must be held back, not sent.
	later := send("later@"+rcptDomain, map[string]any{"scheduled_at": time.Now().Add(4 * time.Second).UTC().Format(time.RFC3339Nano)})

	// 4 bounces of 12 sends: the 4th brings the window to the minimum
	// volume, at 33 %: paused.
	s.sink.Reply("rcpt", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}, 4)
	for i := range 4 {
		s.waitStatus(send(fmt.Sprintf("gone%d@%s", i, rcptDomain), nil), "bounced")
	}
	// The worker checks the rate right after it records the bounce.
	testkit.WaitFor(t, "the account to be paused", func() bool { return s.reputation().Status == "paused" })
	r := s.reputation()
	if r.Status != "paused" || r.Pause == nil || r.Pause.Reason != "bounce_rate" || r.Pause.Window == nil ||
		r.Pause.Window.Sends != 12 || r.Pause.Window.Bounced != 4 {
		t.Fatalf("reputation after the bounces: %+v", r)
	}

	resp := s.Call("POST", "/v1/emails", liveKey, nil, map[string]any{"from": s.From, "to": "x@" + rcptDomain, "subject": "s", "text": "t"})
	if resp.Code != 403 || resp.ErrCode() != "account_paused" {
		t.Errorf("REST send while paused: %d %s", resp.Code, resp.Body)
	}
	var tpl struct{ ID string }
	s.JSON("POST", "/v1/templates", liveKey, map[string]any{"name": "t", "from": s.From, "subject": "s", "text": "t"}, &tpl)
	resp = s.Call("POST", "/api/v1/sends", liveKey, nil, map[string]any{"templateId": tpl.ID, "to": "x@" + rcptDomain})
	if resp.Code != 403 || resp.ErrCode() != "account_paused" {
		t.Errorf("a send of the sends API while paused: %d %s", resp.Code, resp.Body)
	}
	c := s.smtpClient(true, liveKey)
	_, err := testkit.SendMail(c, s.From, []string{"x@" + rcptDomain}, testkit.SimpleMessage(s.From, "x@"+rcptDomain, "paused"))
	testkit.WantSMTPError(t, err, 451, smtp.EnhancedCode{4, 7, 1})
	testkit.WaitFor(t, "the scheduled email to be held back", func() bool { return s.reputation().Held == 1 })

	var changed struct {
		Changed bool   `json:"changed"`
		Status  string `json:"status"`
	}
	if code := admin.JSON("POST", "/admin/v1/accounts/default/resume", "", nil, &changed); code != 200 || !changed.Changed || changed.Status != "active" {
		t.Fatalf("resume: %d %+v", code, changed)
	}
	s.waitStatus(later, "delivered")
	if r := s.reputation(); r.Status != "active" || r.Held != 0 || r.Window.Bounced != 0 {
		t.Errorf("reputation after the resume: %+v", r)
	}
	s.SendOK(liveKey, map[string]any{"from": s.From, "to": "again@" + rcptDomain, "subject": "s", "text": "t"}, nil)

	var events struct {
		Data []struct {
			Type string            `json:"type"`
			Data map[string]string `json:"data"`
		} `json:"data"`
	}
	s.JSON("GET", "/v1/events?type=account.paused", liveKey, nil, &events)
	if len(events.Data) != 1 || events.Data[0].Data["reason"] != "bounce_rate" || events.Data[0].Data["bounced"] != "4" {
		t.Errorf("account.paused events: %+v", events.Data)
	}
	s.webhooksIdle()
	paused, resumed := recv.requests("account.paused"), recv.requests("account.resumed")
	if len(paused) != 1 || len(resumed) != 1 {
		t.Fatalf("webhooks: %d account.paused, %d account.resumed", len(paused), len(resumed))
	}
	var body struct {
		Event string            `json:"event"`
		Data  map[string]string `json:"data"`
	}
	if err := json.Unmarshal(paused[0].body, &body); err != nil || body.Event != "account.paused" ||
		body.Data["reason"] != "bounce_rate" || body.Data["bounceRate"] != "0.3333" || body.Data["sends"] != "12" {
		t.Errorf("account.paused webhook: %s", paused[0].body)
	}
}

// TestReputationNotBelowMinimumVolume: bounces alone, fewer than the
// minimum volume, pause nothing; an operator's pause and resume work by
// the CLI's and the admin API's names, and a second resume changes nothing.
func TestReputationNotBelowMinimumVolume(t *testing.T) {
	s, admin := reputationStack(t, 5)
	s.sink.Reply("rcpt", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}, 4)
	for i := range 4 {
		id := s.SendOK(liveKey, map[string]any{"from": s.From, "to": fmt.Sprintf("gone%d@%s", i, rcptDomain), "subject": "s", "text": "t"}, nil).ID
		s.waitStatus(id, "bounced")
	}
	if r := s.reputation(); r.Status != "active" || r.Window.Bounced != 4 || r.Window.Sends != 4 {
		t.Fatalf("4 bounces under a minimum volume of 5: %+v", r)
	}
	var out struct {
		Changed bool `json:"changed"`
		Pause   *struct {
			Reason string `json:"reason"`
		} `json:"pause"`
	}
	if code := admin.JSON("POST", "/admin/v1/accounts/default/pause", "", nil, &out); code != 200 || !out.Changed || out.Pause == nil || out.Pause.Reason != "manual" {
		t.Fatalf("manual pause: %d %+v", code, out)
	}
	resp := s.Call("POST", "/v1/emails", liveKey, nil, map[string]any{"from": s.From, "to": "x@" + rcptDomain, "subject": "s", "text": "t"})
	if resp.Code != 403 {
		t.Errorf("send while paused by hand: %d %s", resp.Code, resp.Body)
	}
	for _, want := range []bool{true, false} {
		out.Changed = !want
		if code := admin.JSON("POST", "/admin/v1/accounts/default/resume", "", nil, &out); code != 200 || out.Changed != want {
			t.Errorf("resume: %d changed=%v, want %v", code, out.Changed, want)
		}
	}
	if resp := admin.Call("POST", "/admin/v1/accounts/nobody/resume", "", nil, nil); resp.Code != 404 {
		t.Errorf("resume of an unknown account: %d %s", resp.Code, resp.Body)
	}
	s.SendOK(liveKey, map[string]any{"from": s.From, "to": "x@" + rcptDomain, "subject": "s", "text": "t"}, nil)

	// The CLI says the same to the operator.
	env := func(k string) string {
		if k == "PIGEONPOST_REDIS_URL" {
			return s.redis.URL()
		}
		return ""
	}
	for _, c := range []struct{ verb, want string }{
		{"pause", "account default: paused since "},
		{"pause", "account default was paused already"},
		{"reputation", "(manual); 0 emails held back\nlast "},
		{"resume", "account default: sending"},
	} {
		var out bytes.Buffer
		if err := run(context.Background(), []string{"accounts", c.verb, "default"}, &out, env); err != nil || !strings.Contains(out.String(), c.want) {
			t.Errorf("accounts %s: %v\n%s\nwant %q", c.verb, err, out.String(), c.want)
		}
	}
}
