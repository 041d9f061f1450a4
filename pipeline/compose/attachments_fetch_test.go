package compose

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/membudget"
	"github.com/pigeonpost/pigeonpost/internal/safehttp"
	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline"
)

// fetchEnv is a Service whose Fetcher is the attachment client as
// cmd/pigeonpost builds it (HTTPS only, 7 MB, default guard unless allow
// is given), with names looked up on a test DNS server and a fence behind
// the guard that refuses and records any destination off loopback.
type fetchEnv struct {
	dns   *testkit.DNS
	fence testkit.Fence
}

func (e *fetchEnv) service(t *testing.T, srv *httptest.Server, timeout time.Duration, allow func(netip.Addr) bool) *Service {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if srv != nil {
		tr.TLSClientConfig = srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	}
	c := safehttp.New(safehttp.Options{
		Timeout: timeout, MaxBytes: MaxAttachmentBytes, HTTPSOnly: true, Allow: allow, Transport: tr,
		Resolver: &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, e.dns.Addr())
		}},
		Dialer: e.fence.Dialer(),
	})
	return &Service{opt: Options{Fetcher: c, Now: time.Now}}
}

// wantPathError checks that err is a 400 naming attachments[1].path and
// saying want.
func wantPathError(t *testing.T, what string, err error, want string) {
	t.Helper()
	e := pipeline.AsError(err)
	if !errors.Is(err, pipeline.ErrInvalid) || e == nil || e.HTTPStatus != http.StatusBadRequest ||
		!strings.HasPrefix(e.Message, "attachments[1].path: ") || !strings.Contains(e.Message, want) {
		t.Errorf("%s: %v, want a 400 on attachments[1].path saying %q", what, err, want)
	}
}

// two returns a send's attachments: one given inline, then one at path.
func two(path string) []Attachment {
	return []Attachment{{Filename: "a.txt", Content: "aGk="}, {Filename: "b.pdf", Path: path}}
}

// TestAttachmentPathRefused is S8 T1 and T2 at the REST API's layer: each
// refused path is a 400 naming the attachment, and the loopback listener
// on the port the URLs name accepts no connection.
func TestAttachmentPathRefused(t *testing.T) {
	srv, cl := testkit.StartCountingTLS(t, "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("secret")) }))
	_, p, _ := net.SplitHostPort(cl.Addr().String())

	e := &fetchEnv{dns: testkit.StartDNS(t)}
	e.dns.SetA("loop.attacker.test", "127.0.0.1")
	e.dns.SetA("metadata.attacker.test", "169.254.169.254")
	s := e.service(t, srv, 30*time.Second, nil)
	const private = "private, loopback or link-local"
	const form = "is not allowed: it must be https://"
	for url, want := range map[string]string{
		"https://127.0.0.1:" + p + "/":           private,
		"https://[::1]:" + p + "/":               private,
		"https://localhost:" + p + "/":           private,
		"https://127.1:" + p + "/":               form,
		"https://2130706433:" + p + "/":          form,
		"https://0x7f.0.0.1:" + p + "/":          form,
		"https://017700000001:" + p + "/":        form,
		"https://[::ffff:127.0.0.1]:" + p + "/":  private,
		"https://0.0.0.0:" + p + "/":             private,
		"https://loop.attacker.test:" + p + "/":  private,
		"https://10.0.0.1:" + p + "/":            private,
		"https://172.16.0.1:" + p + "/":          private,
		"https://192.168.0.1:" + p + "/":         private,
		"https://169.254.169.254/latest/":        private,
		"https://metadata.attacker.test/latest/": private,
		"https://100.64.0.1:" + p + "/":          private,
		"https://[fd00::1]:" + p + "/":           private,
		"https://[fe80::1]:" + p + "/":           private,
		"https://[64:ff9b::7f00:1]:" + p + "/":   private,
		"https://[::7f00:1]:" + p + "/":          private,
		"http://127.0.0.1:" + p + "/":            "must be an https:// URL",
		"file:///etc/passwd":                     "must be an https:// URL",
		"gopher://127.0.0.1:" + p + "/":          "must be an https:// URL",
		"https://user:pw@127.0.0.1:" + p + "/":   "credentials",
		"https://user:pw@files.example.test/x":   "credentials",
	} {
		_, err := s.resolveAttachments(context.Background(), two(url), nil)
		wantPathError(t, url, err, want)
	}
	if n := cl.Accepted(); n != 0 {
		t.Errorf("the loopback listener accepted %d connections", n)
	}
	e.fence.Check(t)
	// Positive control: allowed, the same URL is fetched.
	got, err := e.service(t, srv, 30*time.Second, func(netip.Addr) bool { return true }).resolveAttachments(context.Background(), two(srv.URL+"/"), nil)
	if err != nil || len(got) != 2 || string(got[1].Data) != "secret" || cl.Accepted() != 1 {
		t.Errorf("allowed fetch: %v, %d accepted", err, cl.Accepted())
	}
}

// TestAttachmentPathLimits: what the fetcher's limits end in, as the
// client sees it (S8 T4, T5): the 7 MB cap, too many redirects, a redirect
// to another loopback address, and a server too slow for the (here short) deadline.
func TestAttachmentPathLimits(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/8mb":
			chunk := make([]byte, 64<<10)
			for range 8 << 4 {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		case "/to-loopback":
			http.Redirect(w, r, "https://127.0.0.2:1/", http.StatusFound)
		case "/slow":
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte("%PDF"))
			_ = http.NewResponseController(w).Flush()
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}
	}))
	defer srv.Close()
	defer close(release)
	e := &fetchEnv{dns: testkit.StartDNS(t)}
	// The test server (127.0.0.1) is allowed; the rest of loopback is not.
	allow := func(ip netip.Addr) bool { return ip == netip.MustParseAddr("127.0.0.1") }
	ctx := context.Background()
	for path, want := range map[string]string{
		"/8mb":         "exceeds the limit of 7340032 bytes (7 MB) a file",
		"/loop":        "redirects more than 3 times",
		"/to-loopback": "private, loopback or link-local",
	} {
		_, err := e.service(t, srv, 30*time.Second, allow).resolveAttachments(ctx, two(srv.URL+path), nil)
		wantPathError(t, path, err, want)
	}
	_, err := e.service(t, srv, 200*time.Millisecond, allow).resolveAttachments(ctx, two(srv.URL+"/slow"), nil)
	wantPathError(t, "/slow", err, "timed out")
	e.fence.Check(t)
}

// TestFetchedFilesTakeTheRequestsMemory: a file fetched by URL is the
// request's memory as its body is: the request's reservation grows by what
// the file may take before it is fetched, and an account holding its whole
// share gets ErrAccountBusy, with nothing fetched.
func TestFetchedFilesTakeTheRequestsMemory(t *testing.T) {
	var requests atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		_, _ = w.Write([]byte("file"))
	}))
	defer srv.Close()
	e := &fetchEnv{dns: testkit.StartDNS(t)}
	s := e.service(t, srv, 30*time.Second, func(netip.Addr) bool { return true })
	perFile := pipeline.MessageCost(MaxAttachmentBytes)
	budget := membudget.New(8*perFile, 2*perFile, 2*perFile)

	res := budget.ReserveFor("acct_a")
	defer res.Release()
	if _, err := s.resolveAttachments(membudget.NewContext(context.Background(), res), two(srv.URL+"/"), nil); err != nil {
		t.Fatal(err)
	}
	if res.Held() != perFile || requests.Load() != 1 {
		t.Fatalf("after one fetched file the request holds %d (want %d), %d requests", res.Held(), perFile, requests.Load())
	}

	other := budget.ReserveFor("acct_a")
	defer other.Release()
	if err := other.Grow(context.Background(), perFile); err != nil {
		t.Fatal(err)
	}
	full := budget.ReserveFor("acct_a") // the account now holds its share
	_, err := s.resolveAttachments(membudget.NewContext(context.Background(), full), two(srv.URL+"/"), nil)
	if !errors.Is(err, pipeline.ErrAccountBusy) || requests.Load() != 1 {
		t.Fatalf("over the account's share: %v, %d requests (want ErrAccountBusy, nothing fetched)", err, requests.Load())
	}
}
