package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/pigeonpost/pigeonpost/config"
	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// The integration tests start the real gateway on 127.0.0.1:0 against a real
// redis-server (embedded only when redis-server is missing and
// PIGEONPOST_REQUIRE_REDIS is unset), a loopback DNS server and a recording
// SMTP sink standing in for the destination MX.

const (
	liveKey      = "sp_live_integrationtestkey000000000001"
	senderDomain = "acme.test"
	rcptDomain   = "example.test"
)

type stack struct {
	t     *testing.T
	redis *testkit.Redis
	dns   *testkit.DNS
	sink  *testkit.Sink
	cfg   config.Config
	addrs boundAddrs
	stop  func()
}

// stackConfig is the configuration every integration test starts from.
func stackConfig(t *testing.T, r *testkit.Redis, d *testkit.DNS, sink *testkit.Sink) config.Config {
	cfg := config.Default()
	cfg.SMTP.Listen = "127.0.0.1:0"
	cfg.SMTP.TLSListen = "127.0.0.1:0"
	cfg.SMTP.Hostname = "gateway.test"
	cfg.SMTP.MaxMessageBytes = 1 << 20
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.HTTP.PublicURL = "https://t.gateway.test"
	cfg.Redis.URL = r.URL()
	cfg.DNS.Resolver = d.Addr()
	cfg.Delivery.MXPort = sink.Port()
	cfg.Delivery.Workers = 2
	cfg.Delivery.Timeout = 5 * time.Second
	cfg.Delivery.ClaimIdle = 6 * time.Second
	cfg.Delivery.RetryInitial = 200 * time.Millisecond
	cfg.Delivery.RetryMax = time.Second
	cfg.Auth.BootstrapKey = liveKey
	cfg.Auth.FailureDelay = 0
	cfg.Domains.SPFInclude = "_spf.gateway.test"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startStack starts Redis, DNS, the sink and the gateway, and verifies
// senderDomain for the bootstrap key's account.
func startStack(t *testing.T, mutate ...func(*config.Config)) *stack {
	t.Helper()
	s := &stack{t: t, redis: testkit.StartRedis(t), dns: testkit.StartDNS(t), sink: testkit.StartSink(t, testkit.SinkOptions{TLS: true})}
	if !s.redis.Real() {
		t.Log("redis-server not on PATH: using the embedded server")
	}
	s.dns.SetMX(rcptDomain, map[string]uint16{"mx." + rcptDomain: 10})
	s.dns.SetA("mx."+rcptDomain, "127.0.0.1")
	s.cfg = stackConfig(t, s.redis, s.dns, s.sink)
	for _, m := range mutate {
		m(&s.cfg)
	}
	s.start()
	s.verifyDomain(senderDomain)
	return s
}

// start runs the gateway in-process until the test ends or stop is called.
func (s *stack) start() {
	t := s.t
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan boundAddrs, 1)
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	go func() {
		done <- serve(ctx, s.cfg, log, serveOptions{stdout: io.Discard, onReady: func(a boundAddrs) { ready <- a },
			// Every integration test also proves that what it made the gateway
			// do would run on Redis Cluster: no script or MULTI across slots.
			redisHook: testkit.NewSlotChecker(t.Errorf)})
	}()
	select {
	case s.addrs = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("gateway did not start: %v", err)
	case <-time.After(20 * time.Second):
		cancel()
		t.Fatal("gateway did not start within 20s")
	}
	stopped := false
	s.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway stopped with: %v", err)
		}
	}
	t.Cleanup(s.stop)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// api calls the REST API with key and decodes the JSON answer into out.
func (s *stack) api(method, path, key string, body any, out any) int {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://"+s.addrs.HTTP+path, rd)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			s.t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, raw, err)
		}
	}
	return resp.StatusCode
}

type domainResp struct {
	ID         string `json:"id"`
	Status     string `json:"status"`
	DNSRecords []struct {
		Type, Name, Value, Status string
	} `json:"dnsRecords"`
}

// verifyDomain adds the domain, publishes its records in the DNS server and verifies it.
func (s *stack) verifyDomain(name string) {
	s.t.Helper()
	var d domainResp
	if code := s.api("POST", "/v1/domains", liveKey, map[string]string{"name": name}, &d); code != http.StatusCreated {
		s.t.Fatalf("create domain: %d", code)
	}
	for _, r := range d.DNSRecords {
		s.dns.SetTXT(r.Name, r.Value)
	}
	if code := s.api("POST", "/v1/domains/"+d.ID+"/verify", liveKey, nil, &d); code != http.StatusOK || d.Status != "verified" {
		s.t.Fatalf("verify domain: %d %+v", code, d)
	}
}

type emailResp struct {
	ID          string     `json:"id"`
	Status      string     `json:"status"`
	Attempts    int        `json:"attempts"`
	LastError   string     `json:"lastError"`
	DeliveredAt *time.Time `json:"deliveredAt"`
}

// waitStatus polls GET /v1/emails/:id until the status is want; each
// status seen on the way is logged, so that a test that fails here says
// where the email stopped.
func (s *stack) waitStatus(id, want string) emailResp {
	s.t.Helper()
	var e emailResp
	seen := ""
	testkit.WaitFor(s.t, "email "+id+" to be "+want, func() bool {
		e = emailResp{}
		s.api("GET", "/v1/emails/"+id, liveKey, nil, &e)
		if e.Status != seen {
			seen = e.Status
			s.t.Logf("email %s: status %q (last error %q)", id, e.Status, e.LastError)
		}
		return e.Status == want
	})
	return e
}

// deliveryIdle waits until the delivery queue is empty: every entry of the
// stream read and acknowledged, none pending, none waiting for a retry or
// its scheduled time. After it nothing more reaches the sink for what was
// submitted before.
func (s *stack) deliveryIdle() {
	s.t.Helper()
	rdb := s.redis.Client(s.t)
	ctx := context.Background()
	testkit.WaitFor(s.t, "the delivery queue to be idle", func() bool {
		groups, err := rdb.XInfoGroups(ctx, store.StreamKey()).Result()
		if err != nil {
			return false
		}
		for _, g := range groups {
			if g.Name == store.GroupName && (g.Pending != 0 || g.Lag != 0) {
				return false
			}
		}
		n, err := rdb.ZCard(ctx, store.RetryKey()).Result()
		return err == nil && n == 0
	})
}

// smtpClient dials the STARTTLS listener; tls and auth say how far to go.
func (s *stack) smtpClient(startTLS bool, key string) *smtp.Client {
	s.t.Helper()
	var c *smtp.Client
	var err error
	if startTLS {
		c, err = smtp.DialStartTLS(s.addrs.SMTP, &tls.Config{InsecureSkipVerify: true})
	} else {
		c, err = smtp.Dial(s.addrs.SMTP)
	}
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { c.Close() })
	if err := c.Hello("client.test"); err != nil && !startTLS {
		s.t.Fatal(err)
	}
	if key != "" {
		if err := c.Auth(sasl.NewPlainClient("", "apikey", key)); err != nil {
			s.t.Fatalf("auth: %v", err)
		}
	}
	return c
}

// send runs one transaction and returns the final reply text or the error.
func send(c *smtp.Client, from string, to []string, msg string) (string, error) {
	if err := c.Mail(from, nil); err != nil {
		return "", err
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			return "", err
		}
	}
	w, err := c.Data()
	if err != nil {
		return "", err
	}
	if _, err := io.WriteString(w, msg); err != nil {
		return "", err
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", err
	}
	return resp.StatusText, nil
}

// queuedID extracts em_… from "Ok: queued as em_…".
func queuedID(t *testing.T, reply string) string {
	t.Helper()
	_, id, ok := strings.Cut(reply, "queued as ")
	if !ok || !strings.HasPrefix(id, "em_") {
		t.Fatalf("reply %q has no queued id", reply)
	}
	return id
}

// wantSMTPError checks an error's SMTP code and enhanced code.
func wantSMTPError(t *testing.T, err error, code int, enh smtp.EnhancedCode) {
	t.Helper()
	se, ok := err.(*smtp.SMTPError)
	if !ok {
		t.Fatalf("got %v (%T), want SMTP %d %v", err, err, code, enh)
	}
	if se.Code != code || se.EnhancedCode != enh {
		t.Fatalf("got %d %v %q, want %d %v", se.Code, se.EnhancedCode, se.Message, code, enh)
	}
}

func simpleMessage(from, to, subject string) string {
	return "From: " + from + "\r\nTo: " + to + "\r\nSubject: " + subject + "\r\n\r\nHello.\r\n"
}

func TestMain(m *testing.M) {
	// The kill-and-restart test runs the real binary's main in a child
	// process: the test binary re-executes itself with this variable set.
	if args := os.Getenv("PIGEONPOST_TEST_MAIN_ARGS"); args != "" {
		os.Args = append([]string{"pigeonpost"}, strings.Fields(args)...)
		main()
		return
	}
	os.Exit(m.Run())
}
