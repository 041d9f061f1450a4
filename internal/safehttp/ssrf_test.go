package safehttp

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
)

// The attack catalogue's S8 (SSRF through URLs users give) against the
// client attachment paths and webhooks use. Every connection stays on
// loopback: servers listen on 127.0.0.1 (and 127.0.0.2 or ::1 where a test
// needs a second address), names are looked up on a test DNS server, and a
// fence behind the guard (Options.Dialer) refuses and records any other
// destination, so that a guard that lets one through fails the test
// without a packet leaving the machine.

// startTLS serves h over HTTPS on addr (host:port) through a counting
// listener.
func startTLS(t *testing.T, addr string, h http.Handler) (*httptest.Server, *testkit.CountingListener) {
	return testkit.StartCountingTLS(t, addr, h)
}

// blockedTarget is a server that must never be reached: HTTPS on
// 127.0.0.1:P and, when the machine has IPv6 loopback, on [::1]:P too.
// accepted is what both listeners accepted.
type blockedTarget struct {
	port      string
	listeners []*testkit.CountingListener
}

func startBlocked(t *testing.T) *blockedTarget {
	t.Helper()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("secret")) })
	_, l4 := startTLS(t, "127.0.0.1:0", h)
	_, port, _ := net.SplitHostPort(l4.Addr().String())
	b := &blockedTarget{port: port, listeners: []*testkit.CountingListener{l4}}
	if l, err := net.Listen("tcp", "[::1]:"+port); err == nil {
		l.Close()
		_, l6 := startTLS(t, "[::1]:"+port, h)
		b.listeners = append(b.listeners, l6)
	}
	return b
}

func (b *blockedTarget) accepted() int64 {
	var n int64
	for _, l := range b.listeners {
		n += l.Accepted()
	}
	return n
}

// env is what a test's clients share: the test DNS server as resolver, the
// fence, and trust in httptest's certificate (whose names are 127.0.0.1,
// ::1 and example.com: example.com is asked for whatever the host).
type env struct {
	dns   *testkit.DNS
	fence *testkit.Fence
	tls   *tls.Config
}

func newEnv(t *testing.T) *env {
	pool := x509.NewCertPool()
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	pool.AddCert(srv.Certificate())
	srv.Close()
	return &env{dns: testkit.StartDNS(t), fence: &testkit.Fence{}, tls: &tls.Config{RootCAs: pool, ServerName: "example.com", MinVersion: tls.VersionTLS12}}
}

// client returns a Client with opt, completed with e's resolver, fence and
// trust.
func (e *env) client(opt Options) *Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = e.tls.Clone()
	opt.Transport = tr
	opt.Dialer = e.fence.Dialer()
	opt.Resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, e.dns.Addr())
	}}
	return New(opt)
}

// attachmentOptions are cmd/pigeonpost's for attachment paths.
func attachmentOptions() Options {
	return Options{Timeout: 30 * time.Second, MaxBytes: 7 << 20, HTTPSOnly: true}
}

// TestGuardRefusesLoopback is S8 T1: every way of writing loopback (and
// every scheme or form not allowed) is refused by the default guard, and
// the loopback listener accepts nothing. The positive control at the end
// shows the listener counts what reaches it.
func TestGuardRefusesLoopback(t *testing.T) {
	e := newEnv(t)
	b := startBlocked(t)
	p := b.port
	e.dns.SetA("loop4.attacker.test", "127.0.0.1")
	e.dns.SetA("loop6.attacker.test", "::1")
	e.dns.SetA("zero.attacker.test", "0.0.0.0")
	e.dns.SetA("loopmany.attacker.test", "10.0.0.1", "127.0.0.1")
	ctx := context.Background()
	c := e.client(attachmentOptions())
	for _, tt := range []struct {
		url  string
		want error
	}{
		{"https://127.0.0.1:" + p + "/", ErrForbiddenAddress},
		{"https://[::1]:" + p + "/", ErrForbiddenAddress},
		{"https://localhost:" + p + "/", ErrForbiddenAddress},
		{"https://LOCALHOST.:" + p + "/", ErrForbiddenAddress},
		{"https://files.localhost:" + p + "/", ErrForbiddenAddress},
		{"https://127.1:" + p + "/", ErrRefusedURL},
		{"https://2130706433:" + p + "/", ErrRefusedURL},
		{"https://0x7f.0.0.1:" + p + "/", ErrRefusedURL},
		{"https://0x7f000001:" + p + "/", ErrRefusedURL},
		{"https://017700000001:" + p + "/", ErrRefusedURL},
		{"https://0177.0.0.1:" + p + "/", ErrRefusedURL},
		{"https://[::ffff:127.0.0.1]:" + p + "/", ErrForbiddenAddress},
		{"https://[::ffff:7f00:1]:" + p + "/", ErrForbiddenAddress},
		{"https://0.0.0.0:" + p + "/", ErrForbiddenAddress},
		{"https://[::]:" + p + "/", ErrForbiddenAddress},
		{"http://127.0.0.1:" + p + "/", ErrRefusedURL}, // attachment paths are https only
		{"http://files.example.test/", ErrRefusedURL},
		{"file:///etc/passwd", ErrRefusedURL},
		{"gopher://127.0.0.1:" + p + "/_GET%20/", ErrRefusedURL},
		{"ftp://127.0.0.1:" + p + "/", ErrRefusedURL},
		{"https://user:pw@127.0.0.1:" + p + "/", ErrRefusedURL},
		{"https://user@files.example.test/", ErrRefusedURL},
		{"https:///nohost", ErrRefusedURL},
		// Names: refused at dial, on the address the resolver answered.
		{"https://loop4.attacker.test:" + p + "/", ErrForbiddenAddress},
		{"https://loop6.attacker.test:" + p + "/", ErrForbiddenAddress},
		{"https://zero.attacker.test:" + p + "/", ErrForbiddenAddress},
		{"https://loopmany.attacker.test:" + p + "/", ErrForbiddenAddress},
	} {
		if _, _, err := c.Fetch(ctx, tt.url); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.url, err, tt.want)
		}
	}
	if n := b.accepted(); n != 0 {
		t.Errorf("the loopback listener accepted %d connections", n)
	}
	e.fence.Check(t)

	// Positive control: the same listener, allowed, is reached.
	open := e.client(Options{AllowPrivate: true, HTTPSOnly: true})
	if body, _, err := open.Fetch(ctx, "https://127.0.0.1:"+p+"/"); err != nil || string(body) != "secret" {
		t.Fatalf("allowed fetch: %q %v", body, err)
	}
	if n := b.accepted(); n != 1 {
		t.Errorf("the allowed fetch made %d connections, want 1", n)
	}
	e.fence.Check(t)
}

// TestGuardRefusesPrivateBeforeConnect is S8 T2: private, shared,
// link-local and IPv4-carrying IPv6 addresses, as literals and as what a
// name resolves to, are refused by the guard before connect: the fence
// behind it sees none of them.
func TestGuardRefusesPrivateBeforeConnect(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.client(attachmentOptions())
	addrs := []string{"10.0.0.1", "172.16.0.1", "192.168.0.1", "169.254.169.254", "100.64.0.1", "fd00::1", "fe80::1",
		"64:ff9b::7f00:1", "64:ff9b::a00:1", "64:ff9b:1::a00:1", "::a00:1", "::7f00:1", "::ffff:10.0.0.1", "2002:a00:1::1",
		"192.0.0.8", "198.18.0.1", "224.0.0.1", "255.255.255.255", "240.0.0.1"}
	for i, a := range addrs {
		ip := netip.MustParseAddr(a)
		lit := a
		if ip.Is6() {
			lit = "[" + a + "]"
		}
		if _, _, err := c.Fetch(ctx, "https://"+lit+":8443/latest/meta-data"); !errors.Is(err, ErrForbiddenAddress) {
			t.Errorf("literal %s: %v", a, err)
		}
		name := "h" + strconv.Itoa(i) + ".attacker.test"
		e.dns.SetA(name, a)
		if _, _, err := c.Fetch(ctx, "https://"+name+":8443/"); !errors.Is(err, ErrForbiddenAddress) {
			t.Errorf("%s (%s): %v", name, a, err)
		}
	}
	e.fence.Check(t)
}

// TestGuardCheckedAddressIsDialedAddress is S8 T3 (DNS rebinding): the
// test policy allows 127.0.0.2 and not 127.0.0.1; files.attacker.test
// answers 127.0.0.2 to its first lookup and 127.0.0.1 to later ones. The
// address checked is the one connected to, so the first fetch reaches
// 127.0.0.2 and the second is refused; the 127.0.0.1 listener on the same
// port never accepts.
func TestGuardCheckedAddressIsDialedAddress(t *testing.T) {
	e := newEnv(t)
	b := startBlocked(t)
	allowed, al := startTLS(t, "127.0.0.2:"+b.port, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("public file"))
	}))
	allowed.Config.SetKeepAlivesEnabled(false) // each fetch dials (and looks up) again
	e.dns.SetAInTurn("files.attacker.test", "127.0.0.2", "127.0.0.1")
	opt := attachmentOptions()
	opt.Allow = func(ip netip.Addr) bool { return ip == netip.MustParseAddr("127.0.0.2") }
	c := e.client(opt)
	u := "https://files.attacker.test:" + b.port + "/report.pdf"
	ctx := context.Background()

	if body, _, err := c.Fetch(ctx, u); err != nil || string(body) != "public file" {
		t.Fatalf("first fetch (127.0.0.2): %q %v", body, err)
	}
	for range 2 {
		if _, _, err := c.Fetch(ctx, u); !errors.Is(err, ErrForbiddenAddress) {
			t.Errorf("fetch after the name moved to 127.0.0.1: %v", err)
		}
	}
	if n := b.accepted(); n != 0 {
		t.Errorf("the 127.0.0.1 listener accepted %d connections", n)
	}
	if n := al.Accepted(); n != 1 {
		t.Errorf("the 127.0.0.2 listener accepted %d connections, want 1", n)
	}
	e.fence.Check(t)
}

// TestGuardRedirects is S8 T4: a redirect is checked like the URL it
// replaces (scheme, credentials, address at dial), and at most
// DefaultMaxRedirects (3) hops are followed.
func TestGuardRedirects(t *testing.T) {
	e := newEnv(t)
	b := startBlocked(t)
	e.dns.SetA("loop.attacker.test", "127.0.0.1")
	e.dns.SetA("files.attacker.test", "127.0.0.2")
	var mu sync.Mutex
	var paths []string
	allowed, _ := startTLS(t, "127.0.0.2:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		switch p := r.URL.Path; {
		case p == "/to-loopback":
			http.Redirect(w, r, "https://127.0.0.1:"+b.port+"/", http.StatusFound)
		case p == "/to-loopback-name":
			http.Redirect(w, r, "https://loop.attacker.test:"+b.port+"/", http.StatusTemporaryRedirect)
		case p == "/to-numeric":
			http.Redirect(w, r, "https://2130706433:"+b.port+"/", http.StatusMovedPermanently)
		case p == "/to-http":
			http.Redirect(w, r, "http://127.0.0.2:"+b.port+"/", http.StatusFound)
		case p == "/to-file":
			http.Redirect(w, r, "file:///etc/passwd", http.StatusFound)
		case strings.HasPrefix(p, "/hops/"):
			n, _ := strconv.Atoi(strings.TrimPrefix(p, "/hops/"))
			if n > 0 {
				http.Redirect(w, r, "/hops/"+strconv.Itoa(n-1), http.StatusFound)
				return
			}
			_, _ = w.Write([]byte("arrived"))
		}
	}))
	base := strings.Replace(allowed.URL, "127.0.0.2", "files.attacker.test", 1)
	opt := attachmentOptions()
	opt.Allow = func(ip netip.Addr) bool { return ip == netip.MustParseAddr("127.0.0.2") }
	c := e.client(opt)
	ctx := context.Background()
	for path, want := range map[string]error{
		"/to-loopback": ErrForbiddenAddress, "/to-loopback-name": ErrForbiddenAddress, "/to-numeric": ErrRefusedURL,
		"/to-http": ErrRefusedURL, "/to-file": ErrRefusedURL,
		fmt.Sprintf("/hops/%d", DefaultMaxRedirects+1): ErrTooManyRedirects,
	} {
		if _, _, err := c.Fetch(ctx, base+path); !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", path, err, want)
		}
	}
	mu.Lock()
	hops := 0
	for _, p := range paths {
		if strings.HasPrefix(p, "/hops/") {
			hops++
		}
	}
	mu.Unlock()
	if hops != DefaultMaxRedirects+1 {
		t.Errorf("%d requests for %d redirects; want the first and %d hops followed", hops, DefaultMaxRedirects+1, DefaultMaxRedirects)
	}
	if body, _, err := c.Fetch(ctx, fmt.Sprintf("%s/hops/%d", base, DefaultMaxRedirects)); err != nil || string(body) != "arrived" {
		t.Errorf("%d hops: %q %v", DefaultMaxRedirects, body, err)
	}
	if n := b.accepted(); n != 0 {
		t.Errorf("the loopback listener accepted %d connections", n)
	}
	e.fence.Check(t)
}

// rawResponse answers with exactly head then body, bypassing net/http's
// own framing (which would not let a handler lie about Content-Length).
func rawResponse(w http.ResponseWriter, head string, body []byte) {
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	_, _ = rw.WriteString(head)
	_, _ = rw.Write(body)
	_ = rw.Flush()
}

// gzipBomb is a gzip stream of n MB of zeros: one member of 1 MB, a
// thousand times smaller compressed, repeated (readers join members).
func gzipBomb(n int) []byte {
	var member bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&member, gzip.BestCompression)
	_, _ = zw.Write(make([]byte, 1<<20))
	_ = zw.Close()
	return bytes.Repeat(member.Bytes(), n)
}

// TestFetchBounded is S8 T5: the body cap holds however the server frames
// (or compresses, or lies about) the body, a trickling server is cut by the
// total deadline, and the memory a fetch allocates stays bounded.
func TestFetchBounded(t *testing.T) {
	const maxBytes = 7 << 20
	bomb := gzipBomb(1024) // 1 GB decoded, about 1 MB on the wire
	release := make(chan struct{})
	srv, _ := startTLS(t, "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/8mb":
			chunk := make([]byte, 64<<10)
			for range 8 << 4 { // 8 MB, chunked, no Content-Length
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		case "/7mb":
			_, _ = w.Write(make([]byte, maxBytes))
		case "/declares-small":
			rawResponse(w, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\n", make([]byte, 8<<20))
		case "/declares-huge":
			rawResponse(w, "HTTP/1.1 200 OK\r\nContent-Length: 1099511627776\r\nConnection: close\r\n\r\n", []byte("tiny"))
		case "/gzip-bomb":
			if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
				t.Errorf("Accept-Encoding %q: the test expects the transport to ask for gzip", r.Header.Get("Accept-Encoding"))
			}
			w.Header().Set("Content-Encoding", "gzip")
			w.Header().Set("Content-Type", "application/pdf")
			_, _ = w.Write(bomb)
		case "/trickle": // a byte a second, for ever (until the client hangs up)
			w.WriteHeader(http.StatusOK)
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				if _, err := w.Write([]byte("x")); err != nil {
					return
				}
				_ = http.NewResponseController(w).Flush()
				select {
				case <-r.Context().Done():
					return
				case <-release:
					return
				case <-tick.C:
				}
			}
		}
	}))
	defer close(release)
	e := newEnv(t)
	opt := attachmentOptions()
	opt.Allow = func(ip netip.Addr) bool { return ip.IsLoopback() }
	c := e.client(opt)
	ctx := context.Background()

	if body, _, err := c.Fetch(ctx, srv.URL+"/7mb"); err != nil || len(body) != maxBytes {
		t.Errorf("exactly the cap: %d bytes, %v", len(body), err)
	}
	if _, _, err := c.Fetch(ctx, srv.URL+"/8mb"); !errors.Is(err, ErrTooLarge) {
		t.Errorf("8 MB streamed: %v", err)
	}
	if body, _, err := c.Fetch(ctx, srv.URL+"/declares-small"); len(body) > 100 {
		t.Errorf("Content-Length 100 followed by 8 MB: %d bytes read (%v)", len(body), err)
	}
	if _, _, err := c.Fetch(ctx, srv.URL+"/declares-huge"); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Content-Length of 1 TB: %v", err)
	}

	// The gzip bomb: cut at the cap on the decoded bytes, with the
	// memory allocated meanwhile (all of it, collected or not) far below
	// the 1 GB it inflates to.
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, _, err := c.Fetch(ctx, srv.URL+"/gzip-bomb")
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("gzip bomb: %v", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
		t.Errorf("the gzip bomb made the fetch allocate %d MB", alloc>>20)
	} else {
		t.Logf("gzip bomb: %d MB allocated", alloc>>20)
	}

	// A trickle: the total deadline ends it (a short one, injected).
	opt.Timeout = 300 * time.Millisecond
	if _, _, err := e.client(opt).Fetch(ctx, srv.URL+"/trickle"); !errors.Is(err, ErrTimeout) {
		t.Errorf("trickle: %v", err)
	}
	// And a context deadline is reported alike.
	opt.Timeout = time.Minute
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, _, err := e.client(opt).Fetch(short, srv.URL+"/trickle"); !errors.Is(err, ErrTimeout) {
		t.Errorf("trickle past the context's deadline: %v", err)
	}
	e.fence.Check(t)
}

// TestCheckHost: hosts ending in a number must be dotted quads.
func TestCheckHost(t *testing.T) {
	for host, ok := range map[string]bool{
		"files.example.com": true, "127.0.0.1": true, "::1": true, "8.8.8.8": true, "x1.example": true, "1.example": true,
		"example.com.": true, "0x.example": true, "deadbeef": true,
		"127.1": false, "2130706433": false, "0x7f.0.0.1": false, "017700000001": false, "0177.0.0.1": false,
		"1.2.3.4.5": false, "example.123": false, "example.0x1f": false, "0x": false, "127.0.0.1.": false,
	} {
		if err := CheckHost(host); (err == nil) != ok {
			t.Errorf("CheckHost(%q) = %v, want ok=%v", host, err, ok)
		}
	}
}
