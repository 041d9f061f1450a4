package webhooks

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/safehttp"
	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// S8 for webhook URLs: the guard of registration (CheckURL) and that of
// every delivery attempt (the dispatcher's safehttp client), with the
// host looked up again at each, on a test DNS server. Everything stays on
// loopback: the test policy allows 127.0.0.2 and refuses 127.0.0.1, and a
// fence behind the guard refuses and records anything off loopback.

// endpointServer serves h over HTTPS on addr through a counting listener,
// without keep-alives: every attempt dials, and looks up, afresh.
func endpointServer(t *testing.T, addr string, h http.Handler) (*httptest.Server, *testkit.CountingListener) {
	srv, cl := testkit.StartCountingTLS(t, addr, h)
	srv.Config.SetKeepAlivesEnabled(false)
	return srv, cl
}

const ssrfAccount = "acct_ssrf"

// ssrfEnv is a dispatcher over a test Redis whose client is production's
// but for the policy (only 127.0.0.2), the resolver (the test DNS server),
// the trust (httptest's certificate, asked for example.com) and the fence.
type ssrfEnv struct {
	t        *testing.T
	st       *store.Store
	dns      *testkit.DNS
	resolver *net.Resolver
	policy   URLPolicy
	d        *Dispatcher
	fence    testkit.Fence
}

func newSSRFEnv(t *testing.T, trust *httptest.Server) *ssrfEnv {
	e := &ssrfEnv{t: t, st: store.New(testkit.StartRedis(t).Client(t), time.Now), dns: testkit.StartDNS(t)}
	e.resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, e.dns.Addr())
	}}
	allow := func(ip netip.Addr) bool { return ip == netip.MustParseAddr("127.0.0.2") }
	e.policy = URLPolicy{Allow: allow}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = trust.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	tr.TLSClientConfig.ServerName = "example.com"
	e.d = &Dispatcher{
		Store: e.st, Timeout: time.Minute, RetryInitial: time.Hour, Logger: slog.New(slog.DiscardHandler),
		Client: safehttp.New(safehttp.Options{Timeout: time.Minute, HTTPSOnly: true, Allow: allow, Transport: tr, Resolver: e.resolver,
			Dialer: e.fence.Dialer()}),
	}
	return e
}

// register checks url as POST /v1/webhooks does (looking its host up on
// the test DNS server) and stores the endpoint.
func (e *ssrfEnv) register(id, url string) error {
	lookup := func(ctx context.Context, host string) ([]string, error) { return e.resolver.LookupHost(ctx, host) }
	if err := CheckURL(context.Background(), url, e.policy, lookup); err != nil {
		return err
	}
	return e.st.AddWebhook(context.Background(), ssrfAccount, &store.Webhook{ID: id, URL: url, Events: []string{"email.delivered"}, Secret: NewSecret(), CreatedAt: time.Now()}, 20)
}

// queue queues one delivery to each endpoint and returns their ids.
func (e *ssrfEnv) queue(endpoints ...string) []string {
	e.t.Helper()
	var ds []*store.WebhookDelivery
	var ids []string
	for _, ep := range endpoints {
		id := deliveryID("1-0", ep)
		ids = append(ids, id)
		ds = append(ds, &store.WebhookDelivery{ID: id, AccountID: ssrfAccount, EndpointID: ep, Event: "email.delivered", Body: []byte(`{}`), CreatedAt: time.Now()})
	}
	if _, err := e.st.QueueWebhookDeliveries(context.Background(), "1-0", ds, time.Now()); err != nil {
		e.t.Fatal(err)
	}
	return ids
}

// run runs the dispatcher until the test ends.
func (e *ssrfEnv) run() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = e.d.Run(ctx)
	}()
	e.t.Cleanup(func() { cancel(); <-done })
}

// attempted waits until delivery id was attempted (and failed) or
// delivered, and returns it (nil once delivered).
func (e *ssrfEnv) attempted(id string) *store.WebhookDelivery {
	e.t.Helper()
	var del *store.WebhookDelivery
	testkit.WaitFor(e.t, "an attempt at "+id, func() bool {
		d, err := e.st.WebhookDelivery(context.Background(), id)
		if errors.Is(err, store.ErrNotFound) {
			del = nil
			return true
		}
		del = d
		return err == nil && d.Attempts > 0
	})
	return del
}

// TestWebhookRebindingRefusedAtDelivery is S8 T6: an endpoint whose host
// resolved to an allowed address when it was registered and to loopback
// at delivery is refused at delivery, before connecting, and the attempt
// is recorded as failed with the reason; an endpoint that stays put is
// delivered. The 127.0.0.1 listener, on the same port, never accepts.
func TestWebhookRebindingRefusedAtDelivery(t *testing.T) {
	var got atomic.Int64
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got.Add(1) })
	blocked, bl := endpointServer(t, "127.0.0.1:0", ok)
	_, port, _ := net.SplitHostPort(blocked.Listener.Addr().String())
	_, al := endpointServer(t, "127.0.0.2:"+port, ok)
	e := newSSRFEnv(t, blocked)
	e.dns.SetAInTurn("hooks.attacker.test", "127.0.0.2", "127.0.0.1")
	e.dns.SetA("hooks.steady.test", "127.0.0.2")

	// Registration: every form of loopback or private is refused; the
	// rebinding name passes (its first answer is 127.0.0.2).
	for _, bad := range []string{"https://127.0.0.1:" + port + "/", "https://[::1]:" + port + "/", "https://localhost:" + port + "/",
		"https://127.1:" + port + "/", "https://2130706433:" + port + "/", "https://0x7f.0.0.1:" + port + "/", "https://017700000001:" + port + "/",
		"https://[::ffff:127.0.0.1]:" + port + "/", "https://0.0.0.0:" + port + "/", "http://127.0.0.2:" + port + "/", "file:///etc/passwd",
		"gopher://127.0.0.2:" + port + "/", "https://user:pw@127.0.0.2:" + port + "/", "https://10.0.0.1/", "https://172.16.0.1/",
		"https://192.168.0.1/", "https://169.254.169.254/", "https://100.64.0.1/", "https://[fd00::1]/", "https://[fe80::1]/",
		"https://[64:ff9b::7f00:1]/", "https://[::7f00:1]/"} {
		if err := e.register("wh_bad", bad); err == nil {
			t.Errorf("registered %s", bad)
		}
	}
	if err := e.register("wh_rebind", "https://hooks.attacker.test:"+port+"/hook"); err != nil {
		t.Fatalf("registering the rebinding host: %v", err)
	}
	if err := e.register("wh_steady", "https://hooks.steady.test:"+port+"/hook"); err != nil {
		t.Fatal(err)
	}

	ids := e.queue("wh_rebind", "wh_steady")
	e.run()
	rebind := e.attempted(ids[0])
	if rebind == nil {
		t.Fatal("the rebinding endpoint was delivered to")
	}
	if rebind.Attempts != 1 || !strings.Contains(rebind.LastError, "refused, not connected") || !strings.Contains(rebind.LastError, "127.0.0.1") {
		t.Errorf("rebinding attempt recorded as %d attempts, lastError %q", rebind.Attempts, rebind.LastError)
	}
	if steady := e.attempted(ids[1]); steady != nil {
		t.Errorf("the steady endpoint was not delivered: %+v", steady)
	}
	if n := bl.Accepted(); n != 0 {
		t.Errorf("the 127.0.0.1 listener accepted %d connections", n)
	}
	if n := al.Accepted(); n != 1 || got.Load() != 1 {
		t.Errorf("the 127.0.0.2 listener accepted %d connections and %d requests, want 1", n, got.Load())
	}
	e.fence.Check(t)
}

// TestWebhookResponseNotRead: an endpoint that answers with an endless
// body is not downloaded (at most maxErrorBody is read, so the attempt
// ends long before the one-minute Timeout that would otherwise end it),
// and nothing of the body reaches what the customer is shown.
func TestWebhookResponseNotRead(t *testing.T) {
	srv, _ := endpointServer(t, "127.0.0.2:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusInternalServerError)
		chunk := []byte(strings.Repeat("root:x:0:0:root:/root:/bin/bash\n", 1024))
		for {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	e := newSSRFEnv(t, srv)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	e.dns.SetA("hooks.chatty.test", "127.0.0.2")
	if err := e.register("wh_chatty", "https://hooks.chatty.test:"+port+"/"); err != nil {
		t.Fatal(err)
	}
	ids := e.queue("wh_chatty")
	e.run()
	del := e.attempted(ids[0])
	if del == nil || del.LastError != "endpoint answered HTTP 500" {
		t.Fatalf("attempt recorded as %+v", del)
	}
}
