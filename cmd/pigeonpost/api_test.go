package main

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/pigeonpost/pigeonpost/config"
)

type apiError struct {
	Error struct{ Code, Message string }
}

func TestRESTSendAndRead(t *testing.T) {
	s := startStack(t)
	from, to := "hello@"+senderDomain, "user@"+rcptDomain

	var sent struct {
		ID         string
		Status     string
		Suppressed []string
	}
	code := s.api("POST", "/v1/emails", liveKey, map[string]any{
		"from": "Acme <" + from + ">", "to": to, "subject": "Your order shipped!",
		"html": "<h1>Order #1234</h1>", "replyTo": "support@" + senderDomain,
		"tags": []string{"welcome"}, "metadata": map[string]string{"userId": "123"},
		"headers": map[string]string{"X-Entity-Ref": "1"},
	}, &sent)
	if code != http.StatusOK || !strings.HasPrefix(sent.ID, "em_") || sent.Status != "sent" || sent.Suppressed == nil {
		t.Fatalf("send: %d %+v", code, sent)
	}
	got := s.sink.Wait(t, 1, 20e9)[0]
	if !strings.Contains(string(got.Data), "Reply-To: <support@"+senderDomain+">") || !strings.Contains(string(got.Data), "X-Entity-Ref: 1") {
		t.Errorf("headers missing at the destination:\n%s", got.Data)
	}
	s.waitStatus(sent.ID, "delivered")

	var e map[string]any
	s.api("GET", "/v1/emails/"+sent.ID, liveKey, nil, &e)
	for _, field := range []string{"id", "status", "fromAddress", "toAddress", "subject", "tags", "metadata", "createdAt", "sentAt", "deliveredAt"} {
		if e[field] == nil {
			t.Errorf("GET /v1/emails/:id lacks %q: %v", field, e)
		}
	}
	if e["subject"] != "Your order shipped!" || e["fromAddress"] != from || e["toAddress"] != to {
		t.Errorf("fields: %v", e)
	}

	var events struct{ Data []struct{ Type string } }
	s.api("GET", "/v1/emails/"+sent.ID+"/events", liveKey, nil, &events)
	if len(events.Data) == 0 || events.Data[len(events.Data)-1].Type != "delivered" {
		t.Errorf("events: %+v", events)
	}
}

func TestRESTErrors(t *testing.T) {
	s := startStack(t)
	from, to := "hello@"+senderDomain, "user@"+rcptDomain
	cases := []struct {
		name     string
		method   string
		path     string
		key      string
		body     any
		wantCode int
		wantErr  string
	}{
		{"no key", "GET", "/v1/emails/em_x", "", nil, 401, "unauthorized"},
		{"bad key", "GET", "/v1/emails/em_x", "sp_live_nope", nil, 401, "unauthorized"},
		{"unknown email", "GET", "/v1/emails/em_x", liveKey, nil, 404, "not_found"},
		{"wrong type names the field", "POST", "/v1/emails", liveKey, map[string]any{"from": from, "to": to, "subject": 5, "text": "x"}, 400, "validation_error"},
		{"CR/LF in subject is refused", "POST", "/v1/emails", liveKey, map[string]any{"from": from, "to": to, "subject": "hi\r\nBcc: x@evil.test", "text": "x"}, 400, "validation_error"},
		{"CR/LF in a custom header is refused", "POST", "/v1/emails", liveKey, map[string]any{"from": from, "to": to, "subject": "hi", "text": "x", "headers": map[string]string{"X-A": "1\r\nBcc: x@evil.test"}}, 400, "validation_error"},
		{"non X-/List- header is refused", "POST", "/v1/emails", liveKey, map[string]any{"from": from, "to": to, "subject": "hi", "text": "x", "headers": map[string]string{"Bcc": "x@evil.test"}}, 400, "validation_error"},
		{"unverified from", "POST", "/v1/emails", liveKey, map[string]any{"from": "a@unverified.test", "to": to, "subject": "hi", "text": "x"}, 403, "domain_not_verified"},
		{"bad recipient", "POST", "/v1/emails", liveKey, map[string]any{"from": from, "to": "not an address", "subject": "hi", "text": "x"}, 400, "invalid_address"},
		{"no body", "POST", "/v1/emails", liveKey, map[string]any{"from": from, "to": to, "subject": "hi"}, 400, "validation_error"},
		{"unknown route", "GET", "/v1/nothing", liveKey, nil, 404, "not_found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var e apiError
			code := s.api(c.method, c.path, c.key, c.body, &e)
			if code != c.wantCode || e.Error.Code != c.wantErr || e.Error.Message == "" {
				t.Errorf("got %d %+v, want %d %s", code, e, c.wantCode, c.wantErr)
			}
		})
	}
	var e apiError
	s.api("POST", "/v1/emails", liveKey, map[string]any{"from": from, "to": to, "subject": 5, "text": "x"}, &e)
	if !strings.Contains(e.Error.Message, "subject") {
		t.Errorf("type error does not name the field: %q", e.Error.Message)
	}
	if n := len(s.sink.Messages()); n != 0 {
		t.Errorf("%d refused messages reached the sink", n)
	}
}

func TestAPIKeysPermissionsAndRevocation(t *testing.T) {
	s := startStack(t)
	var created struct {
		ID, Key, Mode, Permission string
	}
	if code := s.api("POST", "/v1/api-keys", liveKey, map[string]string{"name": "ci", "mode": "live", "permission": "sending"}, &created); code != http.StatusCreated {
		t.Fatalf("create: %d", code)
	}
	if !strings.HasPrefix(created.Key, "sp_live_") || created.Permission != "sending" {
		t.Fatalf("created %+v", created)
	}

	var list struct {
		Data []struct{ ID, Prefix, LastFour string }
	}
	s.api("GET", "/v1/api-keys", liveKey, nil, &list)
	found := false
	for _, k := range list.Data {
		if k.ID == created.ID {
			found = true
			if k.LastFour != created.Key[len(created.Key)-4:] || !strings.HasPrefix(created.Key, k.Prefix) {
				t.Errorf("listed %+v for %s", k, created.Key)
			}
		}
	}
	if !found {
		t.Fatalf("new key not listed: %+v", list)
	}

	var e apiError
	if code := s.api("GET", "/v1/domains", created.Key, nil, &e); code != http.StatusForbidden || !strings.Contains(e.Error.Message, "full") {
		t.Errorf("sending key on /v1/domains: %d %+v", code, e)
	}

	// An SMTP session authenticated with the key, then the key revoked:
	// the session's next MAIL is refused, and so is REST.
	c := s.smtpClient(true, created.Key)
	if code := s.api("DELETE", "/v1/api-keys/"+created.ID, liveKey, nil, nil); code != http.StatusOK {
		t.Fatalf("delete: %d", code)
	}
	from := "hello@" + senderDomain
	wantSMTPError(t, c.Mail(from, nil), 535, smtp.EnhancedCode{5, 7, 8})
	if code := s.api("GET", "/v1/emails", created.Key, nil, nil); code != http.StatusUnauthorized {
		t.Errorf("revoked key on REST: %d", code)
	}
	c2 := s.smtpClient(true, "")
	wantSMTPError(t, c2.Auth(sasl.NewPlainClient("", "apikey", created.Key)), 535, smtp.EnhancedCode{5, 7, 8})
}

func TestHealthMetricsAndPixel(t *testing.T) {
	s := startStack(t)
	if code := s.api("GET", "/healthz", "", nil, nil); code != http.StatusOK {
		t.Errorf("/healthz: %d", code)
	}
	from, to := "hello@"+senderDomain, "user@"+rcptDomain
	if _, err := send(s.smtpClient(true, liveKey), from, []string{to}, simpleMessage(from, to, "m")); err != nil {
		t.Fatal(err)
	}
	s.sink.Wait(t, 1, 20e9)
	_ = s.smtpClient(true, "").Auth(sasl.NewPlainClient("", "apikey", "sp_live_bad"))

	resp, err := http.Get("http://" + s.addrs.HTTP + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, name := range []string{
		"pigeonpost_smtp_sessions_total", "pigeonpost_smtp_auth_failures_total 1",
		`pigeonpost_pipeline_messages_accepted_total{source="smtp"} 1`,
		`pigeonpost_delivery_attempts_total{result="delivered"} 1`,
		"pigeonpost_delivery_queue_depth", "pigeonpost_smtp_data_seconds_bucket",
	} {
		if !strings.Contains(string(body), name) {
			t.Errorf("/metrics lacks %q", name)
		}
	}

	resp, err = http.Get("http://" + s.addrs.HTTP + "/v1/track/open/em_doesnotexist")
	if err != nil {
		t.Fatal(err)
	}
	gif, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(gif) != 43 || resp.Header.Get("Content-Type") != "image/gif" ||
		resp.Header.Get("Cache-Control") != "no-store, no-cache, must-revalidate, private" {
		t.Errorf("pixel: %d, %d bytes, %v", resp.StatusCode, len(gif), resp.Header)
	}
}

func TestAdminListenerServesPprofOnlyThere(t *testing.T) {
	s := startStack(t, func(c *config.Config) { c.HTTP.AdminListen = "127.0.0.1:0" })
	for addr, want := range map[string]int{s.addrs.Admin: http.StatusOK, s.addrs.HTTP: http.StatusNotFound} {
		resp, err := http.Get("http://" + addr + "/debug/pprof/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s/debug/pprof/: %d, want %d", addr, resp.StatusCode, want)
		}
	}
}
