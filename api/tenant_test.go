package api_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/internal/testkit/resttest"
)

// Helpers of the attack-catalogue tests (issue 18): a second tenant on the
// same server, and the logs of every part, captured.

const (
	tenantBKey    = "sp_live_tenantbtestkey00000000000000002"
	tenantBDomain = "other.test"
)

// tenant is a client of another account on the same server.
type tenant struct {
	*resttest.Client
	accountID string
}

// tenantB makes account "tenant-b" with the full key tenantBKey and
// tenantBDomain verified, and returns a client of it that sends from
// that domain.
func (s *server) tenantB() tenant {
	s.t.Helper()
	k := s.p.Key(s.t, "tenant-b", tenantBKey)
	b := resttest.New(s.t, s.URL, tenantBKey)
	b.From, b.To = "hello@"+tenantBDomain, "someone@"+rcptDomain
	b.VerifyDomain(s.dns, tenantBDomain)
	return tenant{b, k.AccountID}
}

// logBuffer is what every part logged, at debug level.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// capturingLogs sends every part's log, debug level and up, to buf.
func capturingLogs(buf *logBuffer) func(*serverConfig) {
	return func(c *serverConfig) {
		log := slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		c.parts.Pipeline.Logger = log
		c.parts.Engagement.Logger = log
		c.parts.Sends.Logger = log
		c.parts.Reputation.Logger = log
		c.api.Logger = log
	}
}

// wantNotFound checks r is a 404 with the JSON error shape and no
// Location.
func wantNotFound(t *testing.T, what string, r resttest.Response) {
	t.Helper()
	if r.Code != http.StatusNotFound || r.ErrCode() != "not_found" || r.Header.Get("Location") != "" ||
		!strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		t.Errorf("%s: %d %q %s, want 404 not_found and no Location", what, r.Code, r.Header.Get("Location"), r.Body)
	}
}

// A request that fails on storage is logged, with its cause, by the
// logger the handler was given, not by slog's default (whose format and
// level the configuration does not set); the client reads none of it.
func TestStorageFailureLoggedByTheHandlersLogger(t *testing.T) {
	var logs logBuffer
	r := testkit.StartRedis(t)
	s := newServer(t, capturingLogs(&logs), func(c *serverConfig) { c.parts.Redis = r.Client(t) })
	r.Kill()
	resp := s.Call("GET", "/v1/emails", liveKey, nil, nil)
	if resp.Code != http.StatusServiceUnavailable || resp.ErrCode() != "service_unavailable" || strings.Contains(string(resp.Body), "refused") {
		t.Errorf("with Redis stopped: %d %s", resp.Code, resp.Body)
	}
	if got := logs.String(); !strings.Contains(got, "request failed") || !strings.Contains(got, "connection refused") {
		t.Errorf("the handler's logger lacks the failure and its cause:\n%s", got)
	}
}
