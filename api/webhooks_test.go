package api_test

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/testkit/resttest"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// Endpoint URLs on private, loopback or link-local addresses are refused
// when the switch is off (the default), before any connection is made.
func TestWebhookURLRules(t *testing.T) {
	s := newServer(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	port := ln.Addr().(*net.TCPAddr).Port
	s.dns.SetA("hooks.attacker.test", "127.0.0.1")
	s.dns.SetA("hooks.partner.test", "93.184.216.34")

	refused := []string{
		fmt.Sprintf("https://127.0.0.1:%d/", port),
		fmt.Sprintf("https://[::1]:%d/", port),
		fmt.Sprintf("https://localhost:%d/", port),
		fmt.Sprintf("https://[::ffff:127.0.0.1]:%d/", port),
		fmt.Sprintf("https://0.0.0.0:%d/", port),
		fmt.Sprintf("https://hooks.attacker.test:%d/", port), // resolves to loopback
		fmt.Sprintf("http://hooks.partner.test:%d/", port),   // plain http
		"https://10.0.0.1/", "https://172.16.0.1/", "https://192.168.0.1/", "https://169.254.169.254/",
		"https://100.64.0.1/", "https://[fd00::1]/", "https://[fe80::1]/",
		"https://user:pw@hooks.partner.test/", "file:///etc/passwd", "gopher://hooks.partner.test/", "https://nx.test/",
	}
	for _, u := range refused {
		var e resttest.APIError
		code := s.JSON("POST", "/v1/webhooks", liveKey, map[string]any{"url": u, "events": []string{"email.opened"}}, &e)
		if code != http.StatusBadRequest || e.Error.Code != "validation_error" || !strings.HasPrefix(e.Error.Message, "url:") {
			t.Errorf("%s: %d %+v", u, code, e)
		}
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("the loopback listener accepted %d connections", n)
	}

	var e resttest.APIError
	for _, events := range [][]string{nil, {}, {"email.exploded"}, {"opened"}} {
		if code := s.JSON("POST", "/v1/webhooks", liveKey, map[string]any{"url": "https://hooks.partner.test/", "events": events}, &e); code != 400 || !strings.HasPrefix(e.Error.Message, "events:") {
			t.Errorf("events %q: %d %+v", events, code, e)
		}
	}
	// A public endpoint is accepted (nothing is sent at registration).
	s.CreateWebhook("https://hooks.partner.test/pigeonpost", "email.opened", "email.opened", "email.bounced")
	var list struct{ Data []struct{ Events []string } }
	s.JSON("GET", "/v1/webhooks", liveKey, nil, &list)
	if len(list.Data) != 1 || fmt.Sprint(list.Data[0].Events) != "[email.opened email.bounced]" {
		t.Errorf("list %+v", list.Data)
	}
}

// GET /v1/webhooks/{id}/deliveries lists the endpoint's recent attempts,
// newest first, for its own account only; a limit reads the newest.
func TestWebhookDeliveriesList(t *testing.T) {
	s := newServer(t)
	s.dns.SetA("hooks.partner.test", "93.184.216.34")
	id, _ := s.CreateWebhook("https://hooks.partner.test/pigeonpost", "email.delivered")
	ctx := t.Context()
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for i, a := range []store.WebhookAttempt{
		{DeliveryID: "whmsg_1", EndpointID: id, Event: "email.delivered", Attempt: 1, At: at, Outcome: store.AttemptRetrying, HTTPStatus: 503,
			LatencyMs: 40, Response: "HTTP 503 Service Unavailable"},
		{DeliveryID: "whmsg_1", EndpointID: id, Event: "email.delivered", Attempt: 2, At: at.Add(time.Minute), Outcome: store.AttemptDelivered,
			HTTPStatus: 200, LatencyMs: 12, Response: "HTTP 200 OK"},
	} {
		if err := s.p.Store.RecordWebhookAttempt(ctx, s.accountID, a); err != nil {
			t.Fatal(i, err)
		}
	}
	type attempt struct {
		DeliveryID, Event, Outcome, Response string
		Attempt, HTTPStatus                  int
		LatencyMs                            int64
		At                                   time.Time
	}
	var list struct{ Data []attempt }
	if code := s.JSON("GET", "/v1/webhooks/"+id+"/deliveries", liveKey, nil, &list); code != http.StatusOK {
		t.Fatalf("GET deliveries: %d", code)
	}
	want := []attempt{
		{DeliveryID: "whmsg_1", Event: "email.delivered", Outcome: "delivered", Response: "HTTP 200 OK", Attempt: 2, HTTPStatus: 200, LatencyMs: 12, At: at.Add(time.Minute)},
		{DeliveryID: "whmsg_1", Event: "email.delivered", Outcome: "retrying", Response: "HTTP 503 Service Unavailable", Attempt: 1, HTTPStatus: 503, LatencyMs: 40, At: at},
	}
	if fmt.Sprint(list.Data) != fmt.Sprint(want) {
		t.Errorf("deliveries %+v, want %+v", list.Data, want)
	}
	if s.JSON("GET", "/v1/webhooks/"+id+"/deliveries?limit=1", liveKey, nil, &list); len(list.Data) != 1 || list.Data[0].Attempt != 2 {
		t.Errorf("limit 1: %+v", list.Data)
	}
	var e resttest.APIError
	if code := s.JSON("GET", "/v1/webhooks/"+id+"/deliveries?limit=51", liveKey, nil, &e); code != http.StatusBadRequest {
		t.Errorf("limit 51: %d %+v", code, e)
	}
	// Another account's key does not see them: its endpoint of that id
	// does not exist.
	const otherKey = "sp_live_integrationtestkey000000000002"
	s.p.Key(t, "other", otherKey)
	if code := s.JSON("GET", "/v1/webhooks/"+id+"/deliveries", otherKey, nil, &e); code != http.StatusNotFound || e.Error.Code != "not_found" {
		t.Errorf("another account: %d %+v", code, e)
	}
	if code := s.JSON("GET", "/v1/webhooks/wh_nope/deliveries", liveKey, nil, &e); code != http.StatusNotFound {
		t.Errorf("an unknown endpoint: %d %+v", code, e)
	}
}
