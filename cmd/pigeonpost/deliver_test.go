package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/config"
	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/internal/testkit/resttest"
)

// Acceptance and delivery scaled apart: a gateway with delivery.workers 0
// queues mail and delivers none; `pigeonpost deliver`, on the same Redis,
// delivers it (over SMTP and REST), listening on no SMTP port and serving
// only the probes and /metrics over HTTP.
func TestDeliverCommand(t *testing.T) {
	s := startStack(t, func(c *config.Config) { c.Delivery.Workers = 0 })
	viaSMTP, err := testkit.SendMail(s.smtpClient(true, liveKey), s.From, []string{s.To}, testkit.SimpleMessage(s.From, s.To, "accepted here"))
	if err != nil {
		t.Fatal(err)
	}
	viaREST := s.SendOK(liveKey, map[string]any{"from": s.From, "to": s.To, "subject": "rest", "text": "accepted here"}, nil).ID
	for _, id := range []string{queuedID(t, viaSMTP), viaREST} {
		s.waitStatus(id, "pending") // and no further, with no delivery worker
	}

	// The deliver process, started as main starts it, from the environment.
	env := map[string]string{
		"PIGEONPOST_REDIS_URL":                           s.cfg.Redis.URL,
		"PIGEONPOST_DNS_RESOLVER":                        s.cfg.DNS.Resolver,
		"PIGEONPOST_DELIVERY_MX_PORT":                    strconv.Itoa(s.cfg.Delivery.MXPort),
		"PIGEONPOST_DELIVERY_ALLOW_PRIVATE_DESTINATIONS": "true",
		"PIGEONPOST_DELIVERY_WORKERS":                    "2",
		"PIGEONPOST_SMTP_HOSTNAME":                       s.cfg.SMTP.Hostname,
		"PIGEONPOST_SMTP_LISTEN":                         s.addrs.SMTP, // taken: deliver must not bind it
		"PIGEONPOST_HTTP_LISTEN":                         "127.0.0.1:0",
		"PIGEONPOST_HTTP_PUBLIC_URL":                     s.cfg.HTTP.PublicURL,
		"PIGEONPOST_LOG_LEVEL":                           "warn",
	}
	ready := filepath.Join(t.TempDir(), "ready.json")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"deliver", "--ready-file", ready}, &bytes.Buffer{}, func(k string) string { return env[k] })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("deliver stopped with: %v", err)
		}
	})
	var addrs boundAddrs
	testkit.WaitFor(t, "pigeonpost deliver to listen", func() bool {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("pigeonpost deliver ended: %v", err)
		default:
		}
		b, err := os.ReadFile(ready)
		return err == nil && json.Unmarshal(b, &addrs) == nil
	})
	if addrs.SMTP != "" || addrs.SMTPTLS != "" || addrs.Mailbox != "" {
		t.Errorf("pigeonpost deliver listens for SMTP: %+v", addrs)
	}

	for _, id := range []string{queuedID(t, viaSMTP), viaREST} {
		s.waitStatus(id, "delivered")
	}
	if got := len(s.sink.Wait(t, 2, 20*time.Second)); got != 2 {
		t.Errorf("sink got %d messages, want 2", got)
	}

	deliverHTTP := resttest.New(t, "http://"+addrs.HTTP, liveKey)
	if r := deliverHTTP.Call("GET", "/healthz", "", nil, nil); r.Code != 200 {
		t.Errorf("deliver /healthz: %d %s", r.Code, r.Body)
	}
	if m := deliverHTTP.Metrics(); !strings.Contains(m, `pigeonpost_delivery_attempts_total{result="delivered"} 2`) {
		t.Errorf("deliver /metrics lacks its two deliveries:\n%s", m)
	}
	if r := deliverHTTP.Call("GET", "/v1/emails/"+viaREST, liveKey, nil, nil); r.Code != 404 {
		t.Errorf("deliver serves the REST API: GET /v1/emails/… is %d", r.Code)
	}
	if c, err := net.Dial("tcp", s.addrs.SMTP); err == nil {
		c.Close() // the accepting gateway's: still there
	} else {
		t.Errorf("the accepting gateway's SMTP port: %v", err)
	}
}

// deliver with nothing to deliver with is a configuration error.
func TestDeliverCommandNeedsWorkers(t *testing.T) {
	r := testkit.StartRedis(t)
	env := map[string]string{"PIGEONPOST_REDIS_URL": r.URL(), "PIGEONPOST_DELIVERY_WORKERS": "0"}
	err := run(context.Background(), []string{"deliver"}, &bytes.Buffer{}, func(k string) string { return env[k] })
	if err == nil || !strings.HasPrefix(err.Error(), "delivery.workers: ") {
		t.Errorf("deliver with delivery.workers 0: %v", err)
	}
}
