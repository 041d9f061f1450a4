package safehttp

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
)

func TestPublic(t *testing.T) {
	cases := map[string]bool{
		"8.8.8.8": true, "2606:4700::1111": true,
		"127.0.0.1": false, "10.1.2.3": false, "172.16.0.1": false, "192.168.1.1": false,
		"169.254.169.254": false, "100.64.0.1": false, "0.0.0.0": false, "::1": false,
		"fe80::1": false, "fc00::1": false, "::ffff:127.0.0.1": false, "::ffff:10.0.0.1": false,
		"224.0.0.1": false, "255.255.255.255": false, "64:ff9b::a00:1": false, "192.0.2.1": false,
		"::7f00:1": false, "64:ff9b:1::a00:1": false, "2002:7f00:1::1": false, "2001:0:4136:e378::1": false,
	}
	for ip, want := range cases {
		if got := Public(netip.MustParseAddr(ip)); got != want {
			t.Errorf("Public(%s) = %v, want %v", ip, got, want)
		}
	}
}

func TestFetchRefusesLoopbackUnlessAllowed(t *testing.T) {
	hits := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "http://127.0.0.1:1/", http.StatusFound)
			return
		}
		w.Write([]byte(strings.Repeat("x", 100)))
	}))
	defer srv.Close()
	ctx := context.Background()

	_, _, err := New(Options{}).Fetch(ctx, srv.URL)
	if !errors.Is(err, ErrForbiddenAddress) || hits != 0 {
		t.Fatalf("loopback fetch: %v (hits %d)", err, hits)
	}
	for _, bad := range []string{"file:///etc/passwd", "gopher://x/", "http://user:pw@example.test/"} {
		if _, _, err := New(Options{AllowPrivate: true}).Fetch(ctx, bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	if _, _, err := New(Options{AllowPrivate: true, HTTPSOnly: true}).Fetch(ctx, srv.URL); err == nil {
		t.Error("http:// accepted with HTTPSOnly")
	}
	body, _, err := New(Options{AllowPrivate: true}).Fetch(ctx, srv.URL)
	if err != nil || len(body) != 100 {
		t.Fatalf("allowed fetch: %v %d", err, len(body))
	}
	if _, _, err := New(Options{AllowPrivate: true, MaxBytes: 99}).Fetch(ctx, srv.URL); !errors.Is(err, ErrTooLarge) {
		t.Errorf("over the cap: %v", err)
	}
}

// TestResolver: names are looked up with Options.Resolver, and the address
// it answers is checked at dial like any other.
func TestResolver(t *testing.T) {
	dns := testkit.StartDNS(t)
	dns.SetA("files.acme.test", "127.0.0.1")
	resolver := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, dns.Addr())
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	u := "http://files.acme.test:" + port + "/"
	ctx := context.Background()

	body, _, err := New(Options{AllowPrivate: true, Resolver: resolver}).Fetch(ctx, u)
	if err != nil || string(body) != "ok" {
		t.Fatalf("fetch through the resolver: %q %v", body, err)
	}
	if _, _, err := New(Options{Resolver: resolver}).Fetch(ctx, u); !errors.Is(err, ErrForbiddenAddress) {
		t.Fatalf("a name that resolves to loopback: %v", err)
	}
}
