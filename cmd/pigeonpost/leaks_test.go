package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
)

// internalDetail is what no client may read in a reply: Redis's address
// (the tests' Redis listens on a unix socket under /tmp; a deployment's on
// host:port), its errors, a Go source position, a stack trace.
var internalDetail = regexp.MustCompile(`(?i)dial (tcp|unix)|\.sock\b|/tmp/|127\.0\.0\.1:|localhost:|MISCONF|OOM command|maxmemory|connection refused|redis: |\.go:\d|goroutine \d|panic:`)

// S19: with Redis stopped, and with Redis refusing writes (out of memory,
// as MISCONF refuses them on a full disk), no SMTP reply and no JSON
// error body carries an internal detail: each is the generic 451 4.3.0 /
// 454 4.7.0 / 503 service_unavailable, the cause in the log only.
// (TestRedisDown covers the recovery.)
func TestStorageFailuresLeakNothing(t *testing.T) {
	s := startStack(t)
	from, to := "hello@"+senderDomain, "user@"+rcptDomain
	var sent struct{ ID string }
	if code := s.JSON("POST", "/v1/emails", liveKey, map[string]any{"from": from, "to": to, "subject": "x", "text": "y"}, &sent); code != http.StatusOK {
		t.Fatalf("send: %d", code)
	}
	check := func(what, text string) {
		t.Helper()
		if m := internalDetail.FindString(text); m != "" {
			t.Errorf("%s: %q carries %q", what, text, m)
		}
	}
	smtpErr := func(err error) string {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			return se.Error()
		}
		if err == nil {
			return ""
		}
		return err.Error()
	}
	routes := []struct{ method, path string }{
		{"POST", "/v1/emails"}, {"GET", "/v1/emails"}, {"GET", "/v1/emails/" + sent.ID}, {"GET", "/v1/emails/" + sent.ID + "/events"},
		{"GET", "/v1/domains"}, {"GET", "/v1/events"}, {"GET", "/v1/analytics"}, {"POST", "/v1/contacts"}, {"POST", "/v1/api-keys"},
		{"POST", "/v1/suppressions"}, {"GET", "/healthz"}, {"GET", "/v1/track/click/" + sent.ID + ".0.AAAA"},
	}
	bodies := map[string]any{
		"/v1/emails": map[string]any{"from": from, "to": to, "subject": "x", "text": "y"}, "/v1/contacts": map[string]any{"email": "c@" + rcptDomain},
		"/v1/api-keys": map[string]any{"name": "x"}, "/v1/suppressions": map[string]any{"email": "s@" + rcptDomain, "reason": "manual"},
	}
	probe := func(state string, wantFailure bool) {
		t.Helper()
		c := s.smtpClient(true, liveKey) // authenticated while it could be
		_, err := testkit.SendMail(c, from, []string{to}, testkit.SimpleMessage(from, to, state))
		if wantFailure && err == nil {
			t.Errorf("%s: SMTP send accepted", state)
		}
		check(state+": SMTP send", smtpErr(err))
		check(state+": SMTP AUTH", smtpErr(s.smtpClient(true, "").Auth(sasl.NewPlainClient("", "apikey", "sp_live_anotherkeyanotherkey000000000001"))))
		failures := 0
		for _, r := range routes {
			resp := s.Call(r.method, r.path, liveKey, nil, bodies[r.path])
			if resp.Code >= 500 {
				failures++
			}
			check(state+": "+r.method+" "+r.path, string(resp.Body))
		}
		if wantFailure && failures == 0 {
			t.Errorf("%s: no REST call failed: the probe did not reach the failure", state)
		}
	}

	// Redis refusing writes: every write answers an error reply.
	rdb := s.redis.Client(t)
	ctx := context.Background()
	if err := rdb.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	probe("Redis refusing writes", true)
	if err := rdb.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}

	// Redis gone.
	s.redis.Kill()
	probe("Redis stopped", true)
	if !strings.Contains(s.logs.String(), "connection refused") {
		t.Errorf("the log lacks the cause that the replies left out")
	}
	s.redis.Restart()
}

// S19: an address with a carriage return in it (go-smtp splits commands
// at LF only) is refused with a one-line reply that quotes it escaped:
// the client cannot make the server write a second line or a fake reply.
func TestAddressEchoCannotInjectLines(t *testing.T) {
	s := startStack(t)
	conn, err := net.DialTimeout("tcp", s.addrs.SMTP, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(conn)
	var w net.Conn = conn
	// reply reads one reply, every line of it, as sent.
	reply := func() string {
		t.Helper()
		var all string
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("reading a reply: %v (so far %q)", err, all)
			}
			all += line
			if len(line) < 4 || line[3] != '-' {
				return all
			}
		}
	}
	send := func(cmd string) string {
		t.Helper()
		if _, err := w.Write([]byte(cmd + "\r\n")); err != nil {
			t.Fatal(err)
		}
		return reply()
	}
	reply()
	send("EHLO client.test")
	send("STARTTLS")
	tc := tls.Client(conn, testkit.InsecureTLS())
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	w, r = tc, bufio.NewReader(tc)
	send("EHLO client.test")
	if got := send("AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00apikey\x00"+liveKey))); !strings.HasPrefix(got, "235") {
		t.Fatalf("AUTH: %q", got)
	}
	oneLine := func(what, got string) {
		t.Helper()
		body := strings.TrimSuffix(got, "\r\n")
		if strings.ContainsAny(body, "\r\n") || !strings.HasPrefix(got, "5") {
			t.Errorf("%s: reply %q: want one refusal line, the address escaped", what, got)
		}
	}
	oneLine("MAIL FROM with a CR", send("MAIL FROM:<a\r250 2.0.0 Ok@"+senderDomain+">"))
	if got := send("MAIL FROM:<hello@" + senderDomain + ">"); !strings.HasPrefix(got, "250") {
		t.Fatalf("MAIL: %q", got)
	}
	oneLine("RCPT TO with a CR", send("RCPT TO:<x\r250 2.1.5 Ok@"+rcptDomain+">"))
	oneLine("RCPT TO with a CR in the domain", send("RCPT TO:<x@a\rb.test>"))
	// The session still works: nothing was taken as a second command.
	if got := send("RCPT TO:<user@" + rcptDomain + ">"); !strings.HasPrefix(got, "250") {
		t.Errorf("RCPT after the refusals: %q", got)
	}
	if got := send("QUIT"); !strings.HasPrefix(got, "221") {
		t.Errorf("QUIT: %q", got)
	}
}
