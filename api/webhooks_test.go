package api_test

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/pigeonpost/pigeonpost/internal/testkit/resttest"
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
