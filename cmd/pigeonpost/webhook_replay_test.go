package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/client"
	"github.com/pigeonpost/pigeonpost/config"
	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline/webhooks"
)

// setDown makes the receiver answer 503 to everything (down) or 200 (up).
func (r *receiver) setDown(down bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.script = nil
	if down {
		r.script = slices.Repeat([]int{http.StatusServiceUnavailable}, 1_000_000)
	}
}

// TestWebhookReplayAfterOutage is issue 14's replay: an endpoint is down
// until its deliveries are given up, then up; a replay of the window sends
// the events again, in order, under their original webhook ids, with their
// bodies, freshly signed; a given-up delivery and a delivered one are
// redelivered by id; a second replay of an endpoint while the first one's
// deliveries are queued is a 409; another account gets 404s.
func TestWebhookReplayAfterOutage(t *testing.T) {
	s := webhookStack(t, func(c *config.Config) {
		c.Webhooks.MaxAge = 300 * time.Millisecond
		c.Webhooks.Workers = 1 // one attempt at a time: the order they arrive in is the order they were taken
	})
	ctx := context.Background()
	api := client.New("http://"+s.addrs.HTTP, liveKey)
	recv := startReceiver(t)
	recv.setDown(true)
	hookID, secret := s.CreateWebhook(recv.srv.URL+"/hooks", "email.sent", "email.delivered")
	since := time.Now().Add(-time.Second)

	for range 3 {
		id, _ := s.SendTracked(nil)
		s.waitStatus(id, "delivered")
	}
	// Down until all six (sent and delivered of three emails) are given up.
	var failed struct {
		Data []struct{ ID, EndpointID string }
	}
	testkit.WaitFor(t, "six deliveries given up", func() bool {
		s.JSON("GET", "/v1/webhooks/failed", liveKey, nil, &failed)
		return len(failed.Data) == 6
	})
	s.webhooksIdle()
	outage := map[string][]byte{} // what each delivery id carried
	for _, g := range recv.requests("") {
		outage[g.header.Get(webhooks.IDHeader)] = g.body
	}
	if len(outage) != 6 {
		t.Fatalf("%d delivery ids during the outage, want 6", len(outage))
	}
	recv.setDown(false)
	before := len(recv.requests(""))

	// The events, oldest first, and the ids their deliveries have.
	var events struct{ Data []struct{ ID, Type string } }
	s.JSON("GET", "/v1/events?limit=100", liveKey, nil, &events)
	var want []string
	for _, e := range slices.Backward(events.Data) {
		if e.Type == "sent" || e.Type == "delivered" {
			want = append(want, webhooks.DeliveryID(e.ID, hookID))
		}
	}

	rep, err := api.ReplayWebhook(ctx, hookID, client.ReplayRequest{Since: since})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Queued != 6 || rep.Pending != 0 || rep.Unavailable != 0 || rep.Truncated || rep.EndpointID != hookID ||
		!regexp.MustCompile(`^whrp_`).MatchString(rep.ID) || !rep.Since.Equal(since.Truncate(time.Millisecond)) || rep.Until.Before(since) {
		t.Errorf("replay: %+v", rep)
	}
	s.webhooksIdle()
	replayed := recv.requests("")[before:]
	var got []string
	for _, g := range replayed {
		id := g.header.Get(webhooks.IDHeader)
		got = append(got, id)
		checkSigned(t, g, secret)
		if !bytes.Equal(g.body, outage[id]) {
			t.Errorf("replay of %s: body\n%s\nwant, as during the outage,\n%s", id, g.body, outage[id])
		}
	}
	if len(want) != 6 || !slices.Equal(got, want) {
		t.Errorf("replayed ids\n%v\nwant the original ones, oldest first\n%v", got, want)
	}

	// Redelivery: one given up, one delivered (by the replay).
	for _, id := range []string{failed.Data[0].ID, want[0]} {
		n := len(recv.requests(""))
		red, err := api.RedeliverWebhook(ctx, id)
		if err != nil || red.ID != id || red.EndpointID != hookID || red.Status != "queued" {
			t.Fatalf("redeliver %s: %+v %v", id, red, err)
		}
		s.webhooksIdle()
		again := recv.requests("")[n:]
		if len(again) != 1 || again[0].header.Get(webhooks.IDHeader) != id || !bytes.Equal(again[0].body, outage[id]) || red.Event != again[0].header.Get(webhooks.EventHeader) {
			t.Fatalf("redelivery of %s: %d requests %+v", id, len(again), again)
		}
		checkSigned(t, again[0], secret)
	}

	// One replay of an endpoint at a time: while the first's deliveries
	// are queued (the receiver holds the first), another is refused.
	arrived, hold := make(chan struct{}, 1), make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case arrived <- struct{}{}:
		default:
		}
		<-hold
	}))
	released := false
	release := func() {
		if !released {
			released = true
			close(hold)
		}
	}
	t.Cleanup(slow.Close) // after release
	t.Cleanup(release)
	slowID, _ := s.CreateWebhook(slow.URL, "email.delivered")
	if rep, err := api.ReplayWebhook(ctx, slowID, client.ReplayRequest{Since: since}); err != nil || rep.Queued != 3 {
		t.Fatalf("replay to the slow endpoint: %+v %v", rep, err)
	}
	select {
	case <-arrived:
	case <-time.After(20 * time.Second):
		t.Fatal("the slow endpoint got nothing")
	}
	var apiErr *client.Error
	if _, err := api.ReplayWebhook(ctx, slowID, client.ReplayRequest{Since: since}); !errors.As(err, &apiErr) || apiErr.Status != http.StatusConflict || apiErr.Code != "conflict" {
		t.Errorf("a second replay while the first's deliveries are queued: %v", err)
	}
	// Another endpoint's replay is not held back.
	if _, err := api.ReplayWebhook(ctx, hookID, client.ReplayRequest{Since: since, Events: []string{"email.sent"}}); err != nil {
		t.Errorf("a replay of another endpoint meanwhile: %v", err)
	}
	release()
	s.webhooksIdle()
	if rep, err := api.ReplayWebhook(ctx, slowID, client.ReplayRequest{Since: since}); err != nil || rep.Queued != 3 {
		t.Errorf("a replay once the first's deliveries are done: %+v %v", rep, err)
	}
	s.webhooksIdle()

	// Another account sees neither the endpoint nor the deliveries.
	var out bytes.Buffer
	env := func(k string) string {
		if k == "PIGEONPOST_REDIS_URL" {
			return s.redis.URL()
		}
		return ""
	}
	if err := run(ctx, []string{"accounts", "create", "other"}, &out, env); err != nil {
		t.Fatal(err)
	}
	other := client.New("http://"+s.addrs.HTTP, regexp.MustCompile(`sp_live_[a-z2-7]+`).FindString(out.String()))
	notFound := func(what string, err error) {
		t.Helper()
		if !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound || apiErr.Code != "not_found" {
			t.Errorf("%s: %v, want 404", what, err)
		}
	}
	_, err = other.ReplayWebhook(ctx, hookID, client.ReplayRequest{Since: since})
	notFound("another account's endpoint", err)
	_, err = other.RedeliverWebhook(ctx, want[0])
	notFound("another account's delivery", err)
	_, err = api.RedeliverWebhook(ctx, "whmsg_000000000000000000000000")
	notFound("an unknown delivery", err)
}
