package main

import (
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	message "github.com/emersion/go-message"

	"github.com/pigeonpost/pigeonpost/config"
	"github.com/pigeonpost/pigeonpost/internal/testkit"
)

// Whole-stack tests of tracking: what SMTP's tracking headers do to the
// delivered message. The REST and tracking endpoints' contract (hits, bot
// filtering, privacy mode, settings, tracking domains, events, analytics)
// is tested in api; the helpers here serve these and the webhook tests.

const (
	testTrackingSecret = "integration-test-tracking-secret"
	browserUA          = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"
)

// trackingStack starts a stack whose tracking secret is known (so tests can
// forge valid ids of unknown emails) and whose timing rule is off unless a
// mutation turns it on: hits in these tests come right after delivery.
func trackingStack(t *testing.T, mutate ...func(*config.Config)) *stack {
	t.Helper()
	return startStack(t, append([]func(*config.Config){func(c *config.Config) {
		c.Tracking.Secret = testTrackingSecret
		c.Tracking.BotWindow = 0
	}}, mutate...)...)
}

// trackedHTML is the HTML of the tracked test mails: a link with an entity,
// a second link, and a password-reset link that stays untracked.
const trackedHTML = `<html><body><p>Hi <a href="https://shop.example.test/a?x=1&amp;y=2">shop</a>` +
	` <a href="https://example.test/second">second</a>` +
	` <a href="https://example.test/reset?token=s3cret">reset</a></p></body></html>`

// sendTracked sends trackedHTML over REST with opens and clicks tracked and
// returns the email id and the warnings of the answer.
func (s *stack) sendTracked(extra map[string]any) (string, []string) {
	s.t.Helper()
	body := map[string]any{
		"from": "hello@" + senderDomain, "to": "user@" + rcptDomain, "subject": "Tracked",
		"html": trackedHTML, "text": "The plain version, without links.",
		"tracking": map[string]bool{"opens": true, "clicks": true},
	}
	for k, v := range extra {
		body[k] = v
	}
	var sent struct {
		ID       string
		Warnings []string
	}
	if code := s.api("POST", "/v1/emails", liveKey, body, &sent); code != http.StatusOK {
		s.t.Fatalf("send: %d %+v", code, sent)
	}
	return sent.ID, sent.Warnings
}

// trackingURLs returns the paths of the pixel and the click links found in
// the email's content as it goes out (decoded MIME), with the host found.
func (s *stack) trackingURLs(id string) (host, pixel string, clicks []string) {
	s.t.Helper()
	text := s.decodedContent(id)
	re := regexp.MustCompile(`https?://([^/"\s]+)(/v1/track/(open|click)/[^"\s<>)]+)`)
	for _, m := range re.FindAllStringSubmatch(text, -1) {
		host = m[1]
		if m[3] == "open" {
			pixel = m[2]
		} else {
			clicks = append(clicks, m[2])
		}
	}
	return host, pixel, clicks
}

// decodedContent returns the text and HTML parts of the email's content,
// transfer encodings undone.
func (s *stack) decodedContent(id string) string {
	s.t.Helper()
	req, _ := http.NewRequest("GET", "http://"+s.addrs.HTTP+"/v1/emails/"+id+"/content", nil)
	req.Header.Set("Authorization", "Bearer "+liveKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	e, err := message.Read(resp.Body)
	if err != nil {
		s.t.Fatalf("content: %v", err)
	}
	var b strings.Builder
	var walk func(e *message.Entity)
	walk = func(e *message.Entity) {
		if mr := e.MultipartReader(); mr != nil {
			for p, err := mr.NextPart(); err == nil; p, err = mr.NextPart() {
				walk(p)
			}
			return
		}
		body, _ := io.ReadAll(e.Body)
		b.Write(body)
		b.WriteString("\n")
	}
	walk(e)
	return b.String()
}

// hit is one request to a tracking endpoint.
type hit struct {
	method, path, userAgent, referer string
	from                             string // source address; "" for the default
}

// track sends h to the gateway without following redirects.
func (s *stack) track(h hit) *http.Response {
	s.t.Helper()
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	if h.from != "" {
		dialer.LocalAddr = &net.TCPAddr{IP: net.ParseIP(h.from)}
	}
	client := &http.Client{
		Transport:     &http.Transport{DialContext: dialer.DialContext, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	method := h.method
	if method == "" {
		method = "GET"
	}
	req, _ := http.NewRequest(method, "http://"+s.addrs.HTTP+h.path, nil)
	req.Header.Set("User-Agent", h.userAgent) // "" sends no User-Agent at all
	if h.referer != "" {
		req.Header.Set("Referer", h.referer)
	}
	resp, err := client.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, h.path, err)
	}
	resp.Body.Close()
	s.settleHits()
	return resp
}

// settleHits waits until the gateway has recorded every tracking hit it
// answered: they are recorded after the answer.
func (s *stack) settleHits() {
	s.t.Helper()
	testkit.WaitFor(s.t, "the answered tracking hits to be recorded", func() bool {
		return strings.Contains(s.metrics(), "\npigeonpost_tracking_hits_queued 0\n")
	})
}

type trackedEmail struct {
	ID        string     `json:"id"`
	Status    string     `json:"status"`
	OpenedAt  *time.Time `json:"openedAt"`
	ClickedAt *time.Time `json:"clickedAt"`
}

func (s *stack) email(id string) trackedEmail {
	s.t.Helper()
	var e trackedEmail
	if code := s.api("GET", "/v1/emails/"+id, liveKey, nil, &e); code != http.StatusOK {
		s.t.Fatalf("GET email %s: %d", id, code)
	}
	return e
}

type analyticsJSON struct {
	From, To           string
	Sent, Delivered    int64
	Bounced            int64
	UniqueOpens        int64
	ProxiedUniqueOpens int64
	MachineUniqueOpens int64
	UniqueClicks       int64
	Opens, Clicks      int64
	BotFilteredOpens   int64
	BotFilteredClicks  int64
	OpenRate           float64
	ClickRate          float64
	BounceRate         float64
	Daily              []struct{ Date string }
}

// analytics calls GET /v1/analytics with query (e.g. "tag=x").
func (s *stack) analytics(query string) analyticsJSON {
	s.t.Helper()
	var a analyticsJSON
	if code := s.api("GET", "/v1/analytics?"+query, liveKey, nil, &a); code != http.StatusOK {
		s.t.Fatalf("analytics?%s: %d", query, code)
	}
	return a
}

// An HTML mail sent through SMTP with both tracking headers arrives with
// the pixel and rewritten links, the headers gone.
func TestTrackingSMTPHeaders(t *testing.T) {
	s := trackingStack(t)
	from, to := "hello@"+senderDomain, "user@"+rcptDomain
	msg := "From: " + from + "\r\nTo: " + to + "\r\nSubject: t\r\nX-SP-Track-Opens: true\r\nX-SP-Track-Clicks: yes\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nShop at https://shop.example.test/p.\r\n" +
		"--b\r\nContent-Type: text/html\r\n\r\n<body><a href=\"https://shop.example.test/p\">shop</a></body>\r\n--b--\r\n"
	reply, err := send(s.smtpClient(true, liveKey), from, []string{to}, msg)
	if err != nil {
		t.Fatal(err)
	}
	id := queuedID(t, reply)
	got := string(s.sink.Wait(t, 1, 20*time.Second)[0].Data)
	for _, want := range []string{"/v1/track/open/" + id, "Shop at https://t.gateway.test/v1/track/click/" + id + ".0.", `<a href="https://t.gateway.test/v1/track/click/` + id + ".1."} {
		if !strings.Contains(got, want) {
			t.Errorf("destination copy lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "X-SP-Track") || strings.Contains(got, "https://shop.example.test") {
		t.Errorf("headers or an untracked link reached the destination:\n%s", got)
	}
}

// TestTrackingUnparsablePartWarns: a part the rewriter cannot decode is
// delivered unchanged and leaves a "warning" event on the email.
func TestTrackingUnparsablePartWarns(t *testing.T) {
	s := startStack(t)
	from, to := "hello@"+senderDomain, "user@"+rcptDomain
	msg := "From: " + from + "\r\nTo: " + to + "\r\nSubject: broken\r\nX-SP-Track-Opens: true\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n"
	reply, err := send(s.smtpClient(true, liveKey), from, []string{to}, msg)
	if err != nil {
		t.Fatal(err)
	}
	id := queuedID(t, reply)
	got := s.sink.Wait(t, 1, 20*time.Second)[0]
	if !strings.Contains(string(got.Data), "!!!not base64!!!") {
		t.Errorf("the unparsable part was changed:\n%s", got.Data)
	}
	var events struct {
		Data []struct {
			Type string
			Data map[string]string
		}
	}
	s.api("GET", "/v1/emails/"+id+"/events", liveKey, nil, &events)
	for _, ev := range events.Data {
		if ev.Type == "warning" && ev.Data["message"] != "" {
			return
		}
	}
	t.Errorf("no warning event: %+v", events.Data)
}
