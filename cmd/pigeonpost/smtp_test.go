package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"

	"github.com/pigeonpost/pigeonpost/config"
	"github.com/pigeonpost/pigeonpost/internal/failpoint"
	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline/deliver"
)

// TestSMTPReplies: the replies that depend on the real pipeline's
// decisions. The protocol contract (STARTTLS gate, AUTH, size, the queued
// reply, pipeline failures) is tested in smtpd against a fake pipeline.
func TestSMTPReplies(t *testing.T) {
	s := startStack(t)
	from, to := "hello@"+senderDomain, "user@"+rcptDomain

	t.Run("envelope sender on an unverified domain is 550 5.7.1", func(t *testing.T) {
		c := s.smtpClient(true, liveKey)
		err := c.Mail("hello@unverified.test", nil)
		testkit.WantSMTPError(t, err, 550, smtp.EnhancedCode{5, 7, 1})
		if !strings.Contains(err.(*smtp.SMTPError).Message, "not verified") {
			t.Errorf("message %q does not say the domain is not verified", err.(*smtp.SMTPError).Message)
		}
	})
	t.Run("From header on an unverified domain is 550 5.7.1", func(t *testing.T) {
		c := s.smtpClient(true, liveKey)
		_, err := testkit.SendMail(c, from, []string{to}, testkit.SimpleMessage("spoof@unverified.test", to, "x"))
		testkit.WantSMTPError(t, err, 550, smtp.EnhancedCode{5, 7, 1})
	})
	t.Run("test-mode keys may use any domain and are never delivered", func(t *testing.T) {
		var created struct{ Key string }
		if code := s.JSON("POST", "/v1/api-keys", liveKey, map[string]string{"name": "t", "mode": "test"}, &created); code != http.StatusCreated {
			t.Fatalf("create key: %d", code)
		}
		before := len(s.sink.Messages())
		c := s.smtpClient(true, created.Key)
		reply, err := testkit.SendMail(c, "x@anything.test", []string{to}, testkit.SimpleMessage("x@anything.test", to, "test mode"))
		if err != nil {
			t.Fatal(err)
		}
		id := queuedID(t, reply)
		var e emailResp
		s.JSON("GET", "/v1/emails/"+id, created.Key, nil, &e)
		if e.Status != "sent" {
			t.Errorf("test-mode status %q, want sent", e.Status)
		}
		s.deliveryIdle() // a wrong delivery would be done by now
		for _, m := range s.sink.Messages()[before:] {
			if bytes.Contains(m.Data, []byte("test mode")) {
				t.Fatal("a test-mode message reached the sink")
			}
		}
	})
}

// TestSMTPDeliversSignedAndTracked is the "done when" of the spine: a
// message sent with net/smtp-style STARTTLS + PLAIN reaches the destination
// DKIM-signed, tracking headers and Bcc gone, pixel and links rewritten.
func TestSMTPDeliversSignedAndTracked(t *testing.T) {
	s := startStack(t)
	from, to := "hello@"+senderDomain, "user@"+rcptDomain
	msg := "From: Acme <" + from + ">\r\nTo: " + to + "\r\nBcc: secret@" + rcptDomain + "\r\n" +
		"Subject: =?utf-8?q?Caf=C3=A9?=\r\nX-SP-Track-Opens: true\r\nX-SP-Track-Clicks: true\r\n" +
		"X-Custom: kept\r\nList-Unsubscribe: <mailto:unsub@" + senderDomain + ">\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" +
		"<html><body><p>Hi <a href=\"https://shop.example.test/a?x=1&amp;y=2\">shop</a></p></body></html>\r\n"
	c := s.smtpClient(true, liveKey)
	reply, err := testkit.SendMail(c, from, []string{to}, msg)
	if err != nil {
		t.Fatal(err)
	}
	id := queuedID(t, reply)
	got := s.sink.Wait(t, 1, 20*time.Second)[0]
	s.waitStatus(id, "delivered")

	if !got.TLS {
		t.Error("delivery did not use STARTTLS although the destination offered it")
	}
	if got.From != from || len(got.To) != 1 || got.To[0] != to {
		t.Errorf("envelope %s → %v", got.From, got.To)
	}
	data := string(got.Data)
	for _, gone := range []string{"X-SP-Track-Opens", "X-SP-Track-Clicks", "Bcc:", "secret@"} {
		if strings.Contains(data, gone) {
			t.Errorf("%q reached the destination", gone)
		}
	}
	for _, kept := range []string{"X-Custom: kept", "List-Unsubscribe:", "Message-Id:", "Date:",
		"https://t.gateway.test/v1/track/open/" + id, "https://t.gateway.test/v1/track/click/"} {
		if !strings.Contains(data, kept) {
			t.Errorf("%q missing at the destination:\n%s", kept, data)
		}
	}
	if strings.Contains(data, "https://shop.example.test") {
		t.Error("the link was not rewritten")
	}
	verifications, err := dkim.VerifyWithOptions(bytes.NewReader(got.Data), &dkim.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) {
			return (&deliver.Resolver{Addr: s.dns.Addr(), Timeout: 2 * time.Second}).LookupTXT(context.Background(), name)
		},
	})
	if err != nil || len(verifications) != 1 || verifications[0].Err != nil || verifications[0].Domain != senderDomain {
		t.Fatalf("DKIM: %v %+v", err, verifications)
	}

	// The click link redirects to the decoded original; the pixel answers a GIF.
	link := data[strings.Index(data, "https://t.gateway.test/v1/track/click/"):]
	link = link[:strings.IndexAny(link, "\"\r\n")]
	link = strings.Replace(link, "https://t.gateway.test", "http://"+s.addrs.HTTP, 1)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "https://shop.example.test/a?x=1&y=2" {
		t.Errorf("click: %d → %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, err = client.Get(link[:len(link)-2] + "xx")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("tampered click id: %d, want 404", resp.StatusCode)
	}
}

func TestSMTPRetryAfter4xxThenDelivered(t *testing.T) {
	s := startStack(t)
	s.sink.Reply("rcpt", &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}, 1)
	from, to := "hello@"+senderDomain, "user@"+rcptDomain
	reply, err := testkit.SendMail(s.smtpClient(true, liveKey), from, []string{to}, testkit.SimpleMessage(from, to, "retry"))
	if err != nil {
		t.Fatal(err)
	}
	e := s.waitStatus(queuedID(t, reply), "delivered")
	if e.Attempts != 2 {
		t.Errorf("attempts %d, want 2", e.Attempts)
	}
	if n := len(s.sink.Messages()); n != 1 {
		t.Errorf("sink holds %d messages, want 1", n)
	}
	// Each attempt's event names the destination's host and its reply.
	var events struct {
		Data []struct {
			Type string
			Data map[string]string
		}
	}
	s.JSON("GET", "/v1/emails/"+e.ID+"/events", liveKey, nil, &events)
	want := map[string]map[string]string{
		"deferred":  {"mx": "mx." + rcptDomain, "response": "451 4.3.0 try later"},
		"delivered": {"mx": "mx." + rcptDomain, "response": "250 2.0.0 OK: queued"},
	}
	for _, ev := range events.Data {
		if w, ok := want[ev.Type]; ok {
			if ev.Data["mx"] != w["mx"] || ev.Data["response"] != w["response"] {
				t.Errorf("%s event data %v, want mx %q, response %q", ev.Type, ev.Data, w["mx"], w["response"])
			}
			delete(want, ev.Type)
		}
	}
	if len(want) != 0 {
		t.Errorf("events %+v lack %v", events.Data, want)
	}
}

func TestSMTPBounceAfter5xxSuppresses(t *testing.T) {
	s := startStack(t)
	s.sink.Reply("rcpt", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}, 1)
	from, to := "hello@"+senderDomain, "gone@"+rcptDomain
	reply, err := testkit.SendMail(s.smtpClient(true, liveKey), from, []string{to}, testkit.SimpleMessage(from, to, "bounce"))
	if err != nil {
		t.Fatal(err)
	}
	e := s.waitStatus(queuedID(t, reply), "bounced")
	if e.Attempts != 1 || !strings.Contains(e.LastError, "550") {
		t.Errorf("attempts %d, last error %q", e.Attempts, e.LastError)
	}
	// The hard bounce put the address on the suppression list.
	_, err = testkit.SendMail(s.smtpClient(true, liveKey), from, []string{to}, testkit.SimpleMessage(from, to, "again"))
	testkit.WantSMTPError(t, err, 550, smtp.EnhancedCode{5, 1, 1})
}

func TestSMTPImplicitTLS(t *testing.T) {
	s := startStack(t)
	c := testkit.DialSMTP(t, s.addrs.SMTPTLS, testkit.SMTPImplicitTLS, liveKey)
	from, to := "hello@"+senderDomain, "user@"+rcptDomain
	reply, err := testkit.SendMail(c, from, []string{to}, testkit.SimpleMessage(from, to, "465"))
	if err != nil {
		t.Fatal(err)
	}
	s.waitStatus(queuedID(t, reply), "delivered")
}

// TestSMTPBareLineEndingsNormalised (S1, SMTP smuggling, CVE-2023-51764
// class): each of the six end-of-data lookalikes with a bare CR or LF,
// followed by a whole smuggled transaction and then the real <CRLF>.<CRLF>,
// sent over DATA and as one BDAT LAST chunk (whose bytes go to the backend
// raw). Each gets exactly one reply, and the next reply is QUIT's; exactly
// one message is queued and reaches the destination, with the original
// envelope, CRLF line endings only, the smuggled commands inside its body,
// and a DKIM signature that verifies.
func TestSMTPBareLineEndingsNormalised(t *testing.T) {
	s := startStack(t)
	from, to := "hello@"+senderDomain, "user@"+rcptDomain
	smuggled := "MAIL FROM:<ceo@victim.test>\r\nRCPT TO:<x@sink.test>\r\nDATA\r\nSpoof\r\n"
	n := 0
	for _, seq := range []string{"\n.\n", "\n.\r\n", "\r\n.\n", "\r.\r", "\r.\r\n", "\r\n.\r"} {
		for _, via := range []string{"DATA", "BDAT"} {
			name := via + " " + strconv.Quote(seq)
			msg := "From: " + from + "\nTo: " + to + "\r\nSubject: smuggle " + strconv.Itoa(n) + "\n\nline one\rline two" + seq + smuggled
			c := s.rawSMTP(t)
			if via == "BDAT" {
				msg += ".\r\n" // no end marker in BDAT: body text like the rest
			}
			id := queuedID(t, c.send(via, from, to, msg))
			c.quiet() // the smuggled MAIL, RCPT and DATA got no reply
			n++
			got := s.sink.Wait(t, n, 20*time.Second)[n-1]
			s.waitStatus(id, "delivered")
			if got.From != from || len(got.To) != 1 || got.To[0] != to {
				t.Errorf("%s: envelope %s → %v", name, got.From, got.To)
			}
			data := got.Data
			for i, b := range data {
				if (b == '\n' && (i == 0 || data[i-1] != '\r')) || (b == '\r' && (i+1 == len(data) || data[i+1] != '\n')) {
					t.Fatalf("%s: bare CR or LF at %d in %q", name, i, data)
				}
			}
			if !bytes.Contains(data, []byte("line one\r\nline two\r\n")) ||
				!bytes.Contains(data, []byte("\r\nMAIL FROM:<ceo@victim.test>\r\nRCPT TO:<x@sink.test>\r\nDATA\r\nSpoof\r\n")) {
				t.Errorf("%s: the smuggled text should stay inside the one message body: %q", name, data)
			}
			s.verifyDKIM(t, data)
		}
	}
	s.deliveryIdle() // a smuggled second message would be delivered by now
	if got := len(s.sink.Messages()); got != n {
		t.Fatalf("sink received %d messages, want %d", got, n)
	}
}

// TestRedisDown: with Redis gone nothing is acknowledged (451 4.3.0 over
// SMTP, 503 over REST, /healthz not ready), and once it is back the same
// client gets 250 without restarting the gateway.
func TestRedisDown(t *testing.T) {
	s := startStack(t)
	from, to := "hello@"+senderDomain, "user@"+rcptDomain
	c := s.smtpClient(true, liveKey) // authenticated while Redis is up
	s.redis.Kill()

	_, err := testkit.SendMail(c, from, []string{to}, testkit.SimpleMessage(from, to, "down"))
	testkit.WantSMTPError(t, err, 451, smtp.EnhancedCode{4, 3, 0})
	if se := err.(*smtp.SMTPError); strings.Contains(se.Message, "redis") || strings.Contains(se.Message, "dial") {
		t.Errorf("internal detail in the reply: %q", se.Message)
	}
	var apiErr struct {
		Error struct{ Code, Message string }
	}
	code := s.JSON("POST", "/v1/emails", liveKey, map[string]any{"from": from, "to": to, "subject": "x", "text": "y"}, &apiErr)
	if code != http.StatusServiceUnavailable || apiErr.Error.Code != "service_unavailable" {
		t.Errorf("REST with Redis down: %d %+v", code, apiErr)
	}
	if code := s.JSON("GET", "/healthz", "", nil, nil); code != http.StatusServiceUnavailable {
		t.Errorf("/healthz with Redis down: %d", code)
	}

	s.redis.Restart()
	// The client retries as a real one would: each try gets 451 or 250,
	// never anything else, and within seconds a 250.
	var reply string
	testkit.WaitFor(t, "a 250 after Redis came back", func() bool {
		if err := c.Reset(); err != nil {
			t.Fatal(err)
		}
		reply, err = testkit.SendMail(c, from, []string{to}, testkit.SimpleMessage(from, to, "back"))
		if err != nil {
			testkit.WantSMTPError(t, err, 451, smtp.EnhancedCode{4, 3, 0})
		}
		return err == nil
	})
	s.waitStatus(queuedID(t, reply), "delivered")
	if n := len(s.sink.Messages()); n != 1 {
		t.Errorf("sink holds %d messages, want exactly 1", n)
	}
}

func TestSMTPOneEmailPerRecipient(t *testing.T) {
	s := startStack(t)
	from := "hello@" + senderDomain
	to := []string{"a@" + rcptDomain, "b@" + rcptDomain}
	reply, err := testkit.SendMail(s.smtpClient(true, liveKey), from, to, testkit.SimpleMessage(from, to[0]+", "+to[1], "two"))
	if err != nil {
		t.Fatal(err)
	}
	s.waitStatus(queuedID(t, reply), "delivered")
	got := s.sink.Wait(t, 2, 20*time.Second)
	seen := map[string]bool{}
	for _, m := range got {
		if len(m.To) != 1 {
			t.Errorf("one delivery carried %v", m.To)
		}
		seen[m.To[0]] = true
	}
	if !seen[to[0]] || !seen[to[1]] {
		t.Errorf("deliveries went to %v", seen)
	}
	var list struct{ Data []struct{ ToAddress string } }
	s.JSON("GET", "/v1/emails", liveKey, nil, &list)
	if len(list.Data) != 2 {
		t.Errorf("GET /v1/emails lists %d emails, want one per recipient", len(list.Data))
	}
}

// TestRateLimitSMTPAndREST: over the rate, SMTP answers 451 4.7.1 at the
// final dot (DATA itself is accepted, the admission having begun then) and
// REST 429. Messages refused after DATA began (too large, no From) are
// charged nothing: the burst of one is still there for the first message
// stored.
func TestRateLimitSMTPAndREST(t *testing.T) {
	s := startStack(t, func(c *config.Config) {
		c.Limits.RatePerSecond = 0.01
		c.Limits.Burst = 1
		c.SMTP.MaxMessageBytes = 64 << 10
	})
	from, to := "hello@"+senderDomain, "user@"+rcptDomain
	c := s.smtpClient(true, liveKey)
	tooLarge := testkit.SimpleMessage(from, to, "too large") + strings.Repeat("0123456789abcdef\r\n", 5000)
	_, err := testkit.SendMail(c, from, []string{to}, tooLarge)
	testkit.WantSMTPError(t, err, 552, smtp.EnhancedCode{5, 3, 4})
	if err := c.Reset(); err != nil {
		t.Fatal(err)
	}
	_, err = testkit.SendMail(c, from, []string{to}, "To: "+to+"\r\nSubject: no From\r\n\r\nHello.\r\n")
	testkit.WantSMTPError(t, err, 550, smtp.EnhancedCode{5, 6, 0})
	if _, err := testkit.SendMail(c, from, []string{to}, testkit.SimpleMessage(from, to, "first")); err != nil {
		t.Fatalf("the first message stored, after two refused: %v", err)
	}

	if err := c.Mail(from, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt(to, nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatalf("DATA over the rate: %v, want 354 and the refusal at the final dot", err)
	}
	if _, err := io.WriteString(w, testkit.SimpleMessage(from, to, "second")); err != nil {
		t.Fatal(err)
	}
	testkit.WantSMTPError(t, w.Close(), 451, smtp.EnhancedCode{4, 7, 1})

	req, _ := http.NewRequest("POST", "http://"+s.addrs.HTTP+"/v1/emails",
		strings.NewReader(`{"from":"`+from+`","to":"`+to+`","subject":"x","text":"y"}`))
	req.Header.Set("Authorization", "Bearer "+liveKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("REST over the limit: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

func TestDeliveryFailsAfterMaxAge(t *testing.T) {
	s := startStack(t, func(c *config.Config) { c.Delivery.MaxAge = 500 * time.Millisecond })
	s.sink.Reply("rcpt", &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 2, 1}, Message: "busy"}, -1)
	from, to := "hello@"+senderDomain, "user@"+rcptDomain
	reply, err := testkit.SendMail(s.smtpClient(true, liveKey), from, []string{to}, testkit.SimpleMessage(from, to, "never"))
	if err != nil {
		t.Fatal(err)
	}
	e := s.waitStatus(queuedID(t, reply), "failed")
	if e.Attempts < 2 || !strings.Contains(e.LastError, "450") {
		t.Errorf("attempts %d, last error %q", e.Attempts, e.LastError)
	}
}

// TestPoisonMessageFailsAlone (issue 17, F13): a delivery attempt that
// panics (here the first of 21, by a failpoint) fails that email alone:
// it is recorded failed, not retried by every worker that claims it, and
// the 20 others, attempted beside it, are delivered.
func TestPoisonMessageFailsAlone(t *testing.T) {
	s := startStack(t)
	var poisoned atomic.Bool
	t.Cleanup(failpoint.Arm(failpoint.Attempt, func(string) {
		if poisoned.CompareAndSwap(false, true) {
			panic("poison")
		}
	}))
	from := "hello@" + senderDomain
	var to []string
	for i := range 21 {
		to = append(to, fmt.Sprintf("user%d@%s", i, rcptDomain))
	}
	if _, err := testkit.SendMail(s.smtpClient(true, liveKey), from, to, testkit.SimpleMessage(from, to[0], "poison")); err != nil {
		t.Fatal(err)
	}
	s.sink.Wait(t, 20, 20*time.Second)
	s.deliveryIdle()
	var list struct{ Data []emailResp }
	s.JSON("GET", "/v1/emails?limit=100", liveKey, nil, &list)
	status := map[string]int{}
	for _, e := range list.Data {
		status[e.Status]++
		if e.Status == "failed" && !strings.Contains(e.LastError, "internal error") {
			t.Errorf("the poisoned email's last error is %q", e.LastError)
		}
	}
	if status["delivered"] != 20 || status["failed"] != 1 || len(list.Data) != 21 {
		t.Errorf("statuses %v of %d emails, want 20 delivered and 1 failed", status, len(list.Data))
	}
	if n := len(s.sink.Messages()); n != 20 {
		t.Errorf("the sink got %d messages, want 20", n)
	}
}

// TestSMTPConnectionLimitFromConfig: smtp.max_connections reaches the
// listener; smtpd's own tests pin what the limit does.
func TestSMTPConnectionLimitFromConfig(t *testing.T) {
	s := startStack(t, func(c *config.Config) { c.SMTP.MaxConnections = 1 })
	first, err := smtp.Dial(s.addrs.SMTP) // reads the 220
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	conn, err := net.Dial("tcp", s.addrs.SMTP)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "421 4.7.0") {
		t.Fatalf("second connection over smtp.max_connections 1: %q %v", line, err)
	}
}
