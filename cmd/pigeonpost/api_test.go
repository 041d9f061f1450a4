package main

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/pigeonpost/pigeonpost/config"
	"github.com/pigeonpost/pigeonpost/internal/testkit"
)

func TestRESTSendAndRead(t *testing.T) {
	s := startStack(t)
	from, to := "hello@"+senderDomain, "user@"+rcptDomain

	var sent struct {
		ID         string
		Status     string
		Suppressed []string
	}
	code := s.JSON("POST", "/v1/emails", liveKey, map[string]any{
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
	s.JSON("GET", "/v1/emails/"+sent.ID, liveKey, nil, &e)
	for _, field := range []string{"id", "status", "fromAddress", "toAddress", "subject", "tags", "metadata", "createdAt", "sentAt", "deliveredAt"} {
		if e[field] == nil {
			t.Errorf("GET /v1/emails/:id lacks %q: %v", field, e)
		}
	}
	if e["subject"] != "Your order shipped!" || e["fromAddress"] != from || e["toAddress"] != to {
		t.Errorf("fields: %v", e)
	}

	var events struct{ Data []struct{ Type string } }
	s.JSON("GET", "/v1/emails/"+sent.ID+"/events", liveKey, nil, &events)
	if len(events.Data) == 0 || events.Data[len(events.Data)-1].Type != "delivered" {
		t.Errorf("events: %+v", events)
	}
}

func TestHealthMetricsAndPixel(t *testing.T) {
	s := startStack(t)
	if code := s.JSON("GET", "/healthz", "", nil, nil); code != http.StatusOK {
		t.Errorf("/healthz: %d", code)
	}
	from, to := "hello@"+senderDomain, "user@"+rcptDomain
	reply, err := testkit.SendMail(s.smtpClient(true, liveKey), from, []string{to}, testkit.SimpleMessage(from, to, "m"))
	if err != nil {
		t.Fatal(err)
	}
	// The sink has the message before the worker counts the delivery:
	// wait for the record, which is written after the count.
	s.waitStatus(queuedID(t, reply), "delivered")
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

// A key revoked over REST ends its SMTP session's use at the next MAIL, and
// AUTH with it fails: the revocation reaches the SMTP side at once. (The
// REST side of keys and permissions is api's TestAPIKeysPermissionsAndRevocation.)
func TestKeyRevokedOverRESTRefusedOverSMTP(t *testing.T) {
	s := startStack(t)
	key, keyID := s.CreateKey(map[string]any{"name": "ci", "mode": "live", "permission": "sending"})
	c := s.smtpClient(true, key)
	if code := s.JSON("DELETE", "/v1/api-keys/"+keyID, liveKey, nil, nil); code != http.StatusOK {
		t.Fatalf("delete: %d", code)
	}
	from := "hello@" + senderDomain
	testkit.WantSMTPError(t, c.Mail(from, nil), 535, smtp.EnhancedCode{5, 7, 8})
	c2 := s.smtpClient(true, "")
	testkit.WantSMTPError(t, c2.Auth(sasl.NewPlainClient("", "apikey", key)), 535, smtp.EnhancedCode{5, 7, 8})
}
