package smtpd

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/pires/go-proxyproto"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
)

// Behind a TCP load balancer every connection comes from the balancer's
// address; with ProxyTrusted the PROXY header names the client, and the
// server counts, throttles and logs that client.

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

// dialProxied connects to addr and sends a PROXY header (version 1 or 2)
// saying the connection comes from client.
func dialProxied(t *testing.T, addr string, version byte, client string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second)) // a hang detector
	h := &proxyproto.Header{
		Version:           version,
		Command:           proxyproto.PROXY,
		TransportProtocol: proxyproto.TCPv4,
		SourceAddr:        &net.TCPAddr{IP: net.ParseIP(client), Port: 40000},
		DestinationAddr:   c.RemoteAddr(),
	}
	if _, err := h.WriteTo(c); err != nil {
		t.Fatal(err)
	}
	return c
}

// proxiedClient is dialProxied, then STARTTLS (or implicit TLS) and AUTH.
func proxiedClient(t *testing.T, addr string, version byte, client string, implicitTLS bool) *smtp.Client {
	t.Helper()
	c := dialProxied(t, addr, version, client)
	var sc *smtp.Client
	if implicitTLS {
		sc = smtp.NewClient(tls.Client(c, testkit.InsecureTLS()))
	} else {
		var err error
		if sc, err = smtp.NewClientStartTLS(c, testkit.InsecureTLS()); err != nil {
			t.Fatal(err)
		}
	}
	if err := sc.Auth(sasl.NewPlainClient("", authUser, testKey)); err != nil {
		t.Fatalf("auth: %v", err)
	}
	return sc
}

// readAll is what the server sends before it closes c.
func readAll(t *testing.T, c net.Conn) string {
	t.Helper()
	b, err := io.ReadAll(c)
	if err != nil && !strings.Contains(err.Error(), "connection reset") {
		t.Fatalf("read: %v (got %q)", err, b)
	}
	return string(b)
}

// The address in the header (v2 and v1, on both listeners) is the one AUTH
// throttling is given and the per-IP cap counts: the second connection of
// 203.0.113.7 is refused, although every connection comes from 127.0.0.1,
// and another client behind the same balancer still gets in.
func TestProxyHeaderNamesClient(t *testing.T) {
	s := startServer(t, func(o *Options) { o.ProxyTrusted, o.MaxConnectionsPerIP = loopback, 1 })

	first := proxiedClient(t, s.addr, 2, "203.0.113.7", false)
	defer first.Close()
	if got := s.pipe.askedFrom(); !slices.Equal(got, []string{"203.0.113.7"}) {
		t.Errorf("AUTH throttled by %q, want the address in the PROXY header", got)
	}

	second := dialProxied(t, s.tlsAddr, 2, "203.0.113.7")
	if got := readAll(t, second); got != "421 4.7.0 Too many connections from your address, try again later\r\n" {
		t.Errorf("second connection of 203.0.113.7: %q", got)
	}

	other := dialProxied(t, s.addr, 1, "203.0.113.8")
	if line, _ := bufio.NewReader(other).ReadString('\n'); !strings.HasPrefix(line, "220 ") {
		t.Errorf("another client behind the balancer (v1 header): %q", line)
	}

	implicit := proxiedClient(t, s.tlsAddr, 2, "198.51.100.9", true)
	defer implicit.Close()
	if got := s.pipe.askedFrom(); !slices.Equal(got, []string{"203.0.113.7", "198.51.100.9"}) {
		t.Errorf("AUTH on the implicit-TLS listener throttled by %q", got)
	}
}

// Only smtp.proxy_trusted may connect: anything else could name any client
// address it likes. Another source is closed unanswered, with or without a
// header.
func TestProxyUntrustedSource(t *testing.T) {
	s := startServer(t, func(o *Options) { o.ProxyTrusted = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")} })
	withHeader := dialProxied(t, s.addr, 2, "203.0.113.7")
	if got := readAll(t, withHeader); got != "" {
		t.Errorf("untrusted source with a header was answered %q", got)
	}
	bare, err := net.Dial("tcp", s.tlsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer bare.Close()
	_ = bare.SetDeadline(time.Now().Add(10 * time.Second))
	if got := readAll(t, bare); got != "" {
		t.Errorf("untrusted source without a header was answered %q", got)
	}
	if n := testutil.ToFloat64(s.srv.opt.Metrics.proxyRefused.WithLabelValues("untrusted")); n != 2 {
		t.Errorf("pigeonpost_smtp_proxy_refused_total{reason=untrusted} = %v, want 2", n)
	}
	if got := s.pipe.askedFrom(); len(got) != 0 {
		t.Errorf("refused connections reached AUTH: %q", got)
	}
}

// A trusted source must send the header: a connection that opens with
// SMTP (or with a broken header) is closed unanswered, never served as
// coming from the balancer itself.
func TestProxyHeaderRequired(t *testing.T) {
	s := startServer(t, func(o *Options) { o.ProxyTrusted = loopback })
	for _, opening := range []string{"EHLO client.test\r\n", "PROXY TCP4 203.0.113.7\r\n", "\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c"} {
		c, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, opening); err != nil {
			t.Fatal(err)
		}
		if closeWrite, ok := c.(*net.TCPConn); ok {
			_ = closeWrite.CloseWrite() // a truncated header ends here
		}
		if got := readAll(t, c); got != "" {
			t.Errorf("connection opening with %q was answered %q", opening, got)
		}
		c.Close()
	}
	if n := testutil.ToFloat64(s.srv.opt.Metrics.proxyRefused.WithLabelValues("header")); n != 3 {
		t.Errorf("pigeonpost_smtp_proxy_refused_total{reason=header} = %v, want 3", n)
	}
	if !strings.Contains(s.logs.String(), "no valid PROXY header") {
		t.Errorf("refusal not logged:\n%s", s.logs)
	}
}

// The header is read in the connection's own goroutine: clients that send
// nothing, or half a header, hold up no one else's accept. The header
// timeout is an hour, so if they did, the last client would hang (and the
// hang detector fail the test).
func TestProxySlowHeaderDoesNotBlockAccept(t *testing.T) {
	s := startServer(t, func(o *Options) { o.ProxyTrusted, o.ProxyHeaderTimeout = loopback, time.Hour })
	for _, opening := range []string{"", "\r\n\r\n\x00", "PROXY TCP4 "} {
		c, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close() // ends the header wait before the server shuts down
		if _, err := io.WriteString(c, opening); err != nil {
			t.Fatal(err)
		}
	}
	c := proxiedClient(t, s.addr, 2, "203.0.113.7", false)
	defer c.Close()
	if err := c.Noop(); err != nil {
		t.Fatal(err)
	}
}
