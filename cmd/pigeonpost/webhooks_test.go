package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/config"
	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/internal/testkit/resttest"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
	"github.com/pigeonpost/pigeonpost/pipeline/webhooks"
)

// Integration tests of webhooks: a loopback receiver (allowed by
// webhooks.allow_private_urls) checks every delivery's signature over the
// raw bytes it got.

// webhookStack is trackingStack with loopback http:// endpoints allowed and
// fast retries.
func webhookStack(t *testing.T, mutate ...func(*config.Config)) *stack {
	t.Helper()
	return trackingStack(t, append([]func(*config.Config){func(c *config.Config) {
		c.Webhooks.AllowPrivateURLs = true
		c.Webhooks.AllowHTTP = true
		c.Webhooks.RetryInitial = 100 * time.Millisecond
		c.Webhooks.RetryMax = 400 * time.Millisecond
	}}, mutate...)...)
}

// received is one request the receiver got.
type received struct {
	header http.Header
	body   []byte
	at     time.Time
}

// receiver is a webhook endpoint on 127.0.0.1 that answers the statuses of
// script in turn (then 200) and records every request.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	script []int
	got    []received
}

func startReceiver(t *testing.T, script ...int) *receiver {
	r := &receiver{script: script}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, received{header: req.Header.Clone(), body: body, at: time.Now()})
		status := http.StatusOK
		if len(r.script) > 0 {
			status, r.script = r.script[0], r.script[1:]
		}
		r.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// requests returns what the receiver got, optionally only for one event.
func (r *receiver) requests(event string) []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []received
	for _, g := range r.got {
		if event == "" || g.header.Get(webhooks.EventHeader) == event {
			out = append(out, g)
		}
	}
	return out
}

// webhooksIdle waits until every event recorded so far has been read and
// acknowledged by the dispatchers and no delivery is waiting: after it,
// nothing more will reach a receiver for what happened before.
func (s *stack) webhooksIdle() {
	s.t.Helper()
	rdb := s.redisClient()
	ctx := context.Background()
	idle := func() bool {
		if !groupsIdle(ctx, rdb, store.EventStreamKey, store.WebhookGroup) {
			return false
		}
		n, err := rdb.ZCard(ctx, store.WebhookDueKey()).Result()
		return err == nil && n == 0
	}
	testkit.WaitFor(s.t, "webhook dispatch to be idle", idle)
}

// checkSigned verifies a request's signature with secret and its headers.
func checkSigned(t *testing.T, r received, secret string) {
	t.Helper()
	if err := webhooks.Verify(secret, r.header.Get(webhooks.SignatureHeader), r.body, time.Now(), webhooks.DefaultTolerance); err != nil {
		t.Errorf("signature of %s: %v", r.body, err)
	}
	if r.header.Get("Content-Type") != "application/json" || !strings.HasPrefix(r.header.Get(webhooks.IDHeader), "whmsg_") {
		t.Errorf("headers %v", r.header)
	}
	var body struct{ Event string }
	if json.Unmarshal(r.body, &body) != nil || body.Event != r.header.Get(webhooks.EventHeader) {
		t.Errorf("event header %q, body %s", r.header.Get(webhooks.EventHeader), r.body)
	}
}

// TestWebhookSignedDeliveries is the "done when": an HTML mail sent
// through SMTP with both tracking headers; a scanner's hits fire nothing
// and count nothing; a person's open and click produce email.opened and
// email.clicked with the documented bodies and valid signatures, first
// only unless webhookOnEveryOpen; analytics shows the rates.
func TestWebhookSignedDeliveries(t *testing.T) {
	s := webhookStack(t)
	recv := startReceiver(t)
	hookID, secret := s.CreateWebhook(recv.srv.URL+"/hooks", "email.delivered", "email.opened", "email.clicked")

	var list struct{ Data []map[string]any }
	s.JSON("GET", "/v1/webhooks", liveKey, nil, &list)
	if len(list.Data) != 1 || list.Data[0]["id"] != hookID || list.Data[0]["secret"] != nil {
		t.Errorf("list: %+v (the secret is shown only once)", list.Data)
	}

	from, to := "hello@"+senderDomain, "user@"+rcptDomain
	msg := "From: " + from + "\r\nTo: " + to + "\r\nSubject: Welcome\r\nX-SP-Track-Opens: true\r\nX-SP-Track-Clicks: true\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + resttest.TrackedHTML + "\r\n"
	reply, err := testkit.SendMail(s.smtpClient(true, liveKey), from, []string{to}, msg)
	if err != nil {
		t.Fatal(err)
	}
	id := queuedID(t, reply)
	data := string(s.sink.Wait(t, 1, 20*time.Second)[0].Data)
	if !strings.Contains(data, "https://t.gateway.test/v1/track/open/"+id) || !strings.Contains(data, "https://t.gateway.test/v1/track/click/"+id+".0.") {
		t.Fatalf("downstream copy lacks the pixel or the links:\n%s", data)
	}
	s.waitStatus(id, "delivered")
	_, pixel, clicks := s.TrackingURLs(id)

	// A scanner: no webhook, not counted.
	s.Track(resttest.Hit{Path: pixel, UserAgent: "curl/8.5.0"})
	s.Track(resttest.Hit{Method: "HEAD", Path: clicks[0], UserAgent: browserUA})
	// A person opens twice and clicks both links.
	s.Track(resttest.Hit{Path: pixel, UserAgent: browserUA})
	s.Track(resttest.Hit{Path: pixel, UserAgent: browserUA})
	s.Track(resttest.Hit{Path: clicks[0], UserAgent: browserUA})
	s.Track(resttest.Hit{Path: clicks[1], UserAgent: browserUA})
	s.webhooksIdle()

	delivered, opened, clicked := recv.requests("email.delivered"), recv.requests("email.opened"), recv.requests("email.clicked")
	if len(delivered) != 1 || len(opened) != 1 || len(clicked) != 1 || len(recv.requests("")) != 3 {
		t.Fatalf("got %d delivered, %d opened, %d clicked, %d in all; want one of each (first open and click only)",
			len(delivered), len(opened), len(clicked), len(recv.requests("")))
	}
	e := s.Email(id)
	stamp := func(t *time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }
	for _, c := range []struct {
		r    received
		want string
	}{
		{opened[0], fmt.Sprintf(`{"event":"email.opened","timestamp":%q,"data":{"emailId":%q,"toAddress":%q,"openedAt":%q,"bot":false,"proxied":false,"machineOpen":null,"rule":null}}`,
			stamp(e.OpenedAt), id, to, stamp(e.OpenedAt))},
		{clicked[0], fmt.Sprintf(`{"event":"email.clicked","timestamp":%q,"data":{"emailId":%q,"toAddress":%q,"clickedAt":%q,"linkUrl":"https://shop.example.test/a?x=1&y=2","linkIndex":0,"bot":false,"proxied":false,"machineOpen":null,"rule":null}}`,
			stamp(e.ClickedAt), id, to, stamp(e.ClickedAt))},
	} {
		checkSigned(t, c.r, secret)
		if string(c.r.body) != c.want {
			t.Errorf("body\n%s\nwant\n%s", c.r.body, c.want)
		}
	}
	checkSigned(t, delivered[0], secret)
	var d struct {
		Event string
		Data  map[string]any
	}
	if json.Unmarshal(delivered[0].body, &d); d.Event != "email.delivered" || d.Data["emailId"] != id || d.Data["toAddress"] != to || d.Data["deliveredAt"] == nil {
		t.Errorf("delivered body %s", delivered[0].body)
	}

	// A changed byte or another secret fails verification; bodies never
	// carry the visitor.
	r := opened[0]
	if err := webhooks.Verify(secret, r.header.Get(webhooks.SignatureHeader), append([]byte(" "), r.body...), time.Now(), webhooks.DefaultTolerance); err == nil {
		t.Error("a changed body verified")
	}
	for _, g := range recv.requests("") {
		if strings.Contains(string(g.body), "127.0.0.1") || strings.Contains(string(g.body), "Firefox") {
			t.Errorf("webhook body carries visitor data: %s", g.body)
		}
	}

	// The rates: one delivered, opened and clicked; the scanner not counted.
	if a := s.Analytics("range=1d"); a.Delivered != 1 || a.UniqueOpens != 1 || a.UniqueClicks != 1 || a.OpenRate != 1 || a.ClickRate != 1 ||
		a.BotFilteredOpens != 1 || a.BotFilteredClicks != 1 {
		t.Errorf("analytics: %+v", a)
	}

	// webhookOnEveryOpen: every further open fires; clicks stay first-only.
	s.JSON("PATCH", "/v1/tracking/defaults", liveKey, map[string]bool{"webhookOnEveryOpen": true}, nil)
	s.Track(resttest.Hit{Path: pixel, UserAgent: browserUA})
	s.Track(resttest.Hit{Path: clicks[1], UserAgent: browserUA})
	s.webhooksIdle()
	if n, m := len(recv.requests("email.opened")), len(recv.requests("email.clicked")); n != 2 || m != 1 {
		t.Errorf("with webhookOnEveryOpen: %d opened (want 2), %d clicked (want 1)", n, m)
	}
	opened = recv.requests("email.opened")
	checkSigned(t, opened[1], secret)
	if opened[0].header.Get(webhooks.IDHeader) == opened[1].header.Get(webhooks.IDHeader) {
		t.Error("two events share a webhook id")
	}

	// Deleting the endpoint stops deliveries.
	if code := s.JSON("DELETE", "/v1/webhooks/"+hookID, liveKey, nil, nil); code != http.StatusOK {
		t.Errorf("delete: %d", code)
	}
	var e404 resttest.APIError
	if code := s.JSON("DELETE", "/v1/webhooks/"+hookID, liveKey, nil, &e404); code != http.StatusNotFound {
		t.Errorf("delete again: %d", code)
	}
	s.Track(resttest.Hit{Path: pixel, UserAgent: browserUA})
	s.webhooksIdle()
	if n := len(recv.requests("")); n != 4 {
		t.Errorf("%d requests after the endpoint was deleted, want the 4 from before", n)
	}
}

// A receiver answering 500, 500, then 200 gets exactly three attempts of
// the same delivery, each freshly signed.
func TestWebhookRetryAfter500(t *testing.T) {
	s := webhookStack(t)
	recv := startReceiver(t, 500, 500)
	_, secret := s.CreateWebhook(recv.srv.URL, "email.delivered")
	id, _ := s.SendTracked(nil)
	s.waitStatus(id, "delivered")
	s.webhooksIdle()

	got := recv.requests("")
	if len(got) != 3 {
		t.Fatalf("%d attempts, want 3", len(got))
	}
	for _, g := range got {
		checkSigned(t, g, secret)
		if g.header.Get(webhooks.IDHeader) != got[0].header.Get(webhooks.IDHeader) || string(g.body) != string(got[0].body) {
			t.Errorf("attempts differ: %s %s", g.header.Get(webhooks.IDHeader), g.body)
		}
	}
	if got[2].at.Sub(got[1].at) <= 0 || got[1].at.Sub(got[0].at) <= 0 {
		t.Error("attempts out of order")
	}
	metrics := s.Metrics()
	for _, want := range []string{`pigeonpost_webhooks_attempts_total{result="retried"} 2`, `pigeonpost_webhooks_attempts_total{result="delivered"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// A delivery that keeps failing past webhooks.max_age is given up and
// listed under /v1/webhooks/failed.
func TestWebhookGivenUp(t *testing.T) {
	s := webhookStack(t, func(c *config.Config) { c.Webhooks.MaxAge = 300 * time.Millisecond })
	recv := startReceiver(t, 503, 503, 503, 503, 503, 503, 503, 503, 503, 503, 503, 503)
	hookID, _ := s.CreateWebhook(recv.srv.URL, "email.delivered")
	id, _ := s.SendTracked(nil)
	s.waitStatus(id, "delivered")
	s.webhooksIdle()

	var failed struct {
		Data []struct {
			ID, EndpointID, Event, LastError string
			Attempts                         int
		}
	}
	s.JSON("GET", "/v1/webhooks/failed", liveKey, nil, &failed)
	if len(failed.Data) != 1 || failed.Data[0].EndpointID != hookID || failed.Data[0].Event != "email.delivered" ||
		failed.Data[0].Attempts < 2 || failed.Data[0].Attempts != len(recv.requests("")) || !strings.Contains(failed.Data[0].LastError, "503") {
		t.Errorf("failed: %+v, %d requests", failed.Data, len(recv.requests("")))
	}
}

// TestWebhookHostThroughConfiguredResolver: an endpoint's host name is
// looked up with dns.resolver, like MX hosts, not with the system's
// resolver (which does not know it).
func TestWebhookHostThroughConfiguredResolver(t *testing.T) {
	s := webhookStack(t)
	recv := startReceiver(t)
	_, port, err := net.SplitHostPort(recv.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s.dns.SetA("hooks.acme.test", "127.0.0.1")
	s.CreateWebhook("http://hooks.acme.test:"+port+"/hooks", "email.delivered")

	from, to := "hello@"+senderDomain, "user@"+rcptDomain
	reply, err := testkit.SendMail(s.smtpClient(true, liveKey), from, []string{to}, testkit.SimpleMessage(from, to, "resolved"))
	if err != nil {
		t.Fatal(err)
	}
	s.waitStatus(queuedID(t, reply), "delivered")
	s.webhooksIdle()
	if got := recv.requests("email.delivered"); len(got) != 1 {
		t.Fatalf("%d email.delivered deliveries, want 1", len(got))
	}
}

// An endpoint with machineEvents gets the machines' hits too, each
// flagged with what tracking/bots.go made of it; a default endpoint gets
// people's only, so an Apple Mail Privacy Protection open is not an open
// there. Analytics keep raw and human counts side by side.
func TestWebhookMachineEvents(t *testing.T) {
	s := webhookStack(t)
	people, machines := startReceiver(t), startReceiver(t)
	s.CreateWebhook(people.srv.URL, "email.opened", "email.clicked")
	var hook struct{ MachineEvents bool }
	if code := s.JSON("POST", "/v1/webhooks", liveKey, map[string]any{"url": machines.srv.URL,
		"events": []string{"email.opened", "email.clicked"}, "machineEvents": true}, &hook); code != http.StatusCreated || !hook.MachineEvents {
		t.Fatalf("create an endpoint with machineEvents: %d %+v", code, hook)
	}
	id, _ := s.SendTracked(nil)
	s.waitStatus(id, "delivered")
	_, pixel, clicks := s.TrackingURLs(id)
	s.Track(resttest.Hit{Path: pixel, UserAgent: "Mozilla/5.0"})    // Apple Mail Privacy Protection
	s.Track(resttest.Hit{Path: clicks[0], UserAgent: "curl/8.5.0"}) // a scanner
	s.Track(resttest.Hit{Path: pixel, UserAgent: browserUA})        // a person
	s.webhooksIdle()

	type data struct {
		Bot         bool
		Proxied     bool
		MachineOpen *string
		Rule        *string
	}
	payloads := func(r *receiver) (out []string) {
		for _, g := range r.requests("") {
			var b struct {
				Event string
				Data  data
			}
			if err := json.Unmarshal(g.body, &b); err != nil {
				t.Fatal(err)
			}
			rule := "-"
			if b.Data.Rule != nil {
				rule = *b.Data.Rule
			}
			out = append(out, fmt.Sprintf("%s bot=%v proxied=%v rule=%s", b.Event, b.Data.Bot, b.Data.Proxied, rule))
		}
		slices.Sort(out)
		return out
	}
	if got, want := payloads(people), []string{"email.opened bot=false proxied=false rule=-"}; !slices.Equal(got, want) {
		t.Errorf("the default endpoint got %q, want %q", got, want)
	}
	if got, want := payloads(machines), []string{
		"email.clicked bot=true proxied=false rule=known_bot_user_agent",
		"email.opened bot=false proxied=false rule=-",
		"email.opened bot=false proxied=true rule=apple_mpp",
	}; !slices.Equal(got, want) {
		t.Errorf("the machineEvents endpoint got %q, want %q", got, want)
	}
	var a struct{ Opens, RawOpens, RawClicks, UniqueOpens, HumanUniqueOpens, MachineUniqueOpens int64 }
	s.JSON("GET", "/v1/analytics", liveKey, nil, &a)
	if a.RawClicks != 1 || a.MachineUniqueOpens != 1 || a.HumanUniqueOpens != a.UniqueOpens-1 || a.RawOpens < a.Opens {
		t.Errorf("analytics %+v", a)
	}
}

// TestWebhookHangingReceiver (catalogue S15): a receiver that never
// answers is cut at webhooks.timeout and the event retried, with the same
// webhook id, signed afresh; while the attempt hangs, mail is delivered as
// usual (webhooks have their own stream and workers).
func TestWebhookHangingReceiver(t *testing.T) {
	s := webhookStack(t, func(c *config.Config) { c.Webhooks.Timeout = 3 * time.Second })
	hanging := make(chan struct{})
	var mu sync.Mutex
	var got []received
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		mu.Lock()
		got = append(got, received{header: req.Header.Clone(), body: body, at: time.Now()})
		first := len(got) == 1
		mu.Unlock()
		if first {
			close(hanging)
			<-req.Context().Done() // the gateway gives up on it
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	_, secret := s.CreateWebhook(srv.URL, "email.delivered")

	first, _ := s.SendTracked(nil)
	s.waitStatus(first, "delivered")
	<-hanging
	second, _ := s.SendTracked(nil)
	s.waitStatus(second, "delivered")
	s.webhooksIdle()

	mu.Lock()
	defer mu.Unlock()
	byID := map[string]int{}
	for _, g := range got {
		checkSigned(t, g, secret)
		byID[g.header.Get(webhooks.IDHeader)]++
	}
	if len(got) != 3 || len(byID) != 2 || byID[got[0].header.Get(webhooks.IDHeader)] != 2 {
		t.Fatalf("%d requests for %d webhook ids (%v), want the hung one retried once and the other sent once", len(got), len(byID), byID)
	}
}
