package smtpd

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// One client address holds at most MaxConnectionsPerIP connections, over
// both listeners: one host cannot take every slot (issue 18: with NOOPs it
// held them all). Another address still gets in, and a closed connection
// frees its slot.
func TestConnectionsPerIP(t *testing.T) {
	s := startServer(t, func(o *Options) { o.MaxConnectionsPerIP = 2 })
	dial := func(local, addr string) (net.Conn, string) {
		t.Helper()
		d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		return c, line
	}
	first, greeting := dial("127.0.0.1", s.addr)
	if !strings.HasPrefix(greeting, "220 ") {
		t.Fatalf("greeting %q", greeting)
	}
	second, _ := dial("127.0.0.1", s.addr)
	defer second.Close()
	third, refusal := dial("127.0.0.1", s.tlsAddr) // the cap counts both listeners
	third.Close()
	if refusal != "421 4.7.0 Too many connections from your address, try again later\r\n" {
		t.Errorf("third connection from one address: %q", refusal)
	}
	other, greeting := dial("127.0.0.2", s.addr)
	other.Close()
	if !strings.HasPrefix(greeting, "220 ") {
		t.Errorf("another address: %q", greeting)
	}
	first.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, line := dial("127.0.0.1", s.addr)
		c.Close()
		if strings.HasPrefix(line, "220 ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a closed connection did not free its slot: %q", line)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A connection lives at most MaxSessionTime: NOOPs do not keep it open (a
// host could otherwise hold its slots for ever), and its end holds through
// TLS, whose deadlines are set on the connection below it. The client is
// answered 421 and the connection closed.
func TestSessionLifetime(t *testing.T) {
	s := startServer(t, func(o *Options) { o.MaxSessionTime = 300 * time.Millisecond })
	c, err := tls.Dial("tcp", s.tlsAddr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second)) // a hang detector
	r := bufio.NewReader(c)
	if line, _ := r.ReadString('\n'); !strings.HasPrefix(line, "220 ") {
		t.Fatalf("greeting %q", line)
	}
	for {
		if _, err := io.WriteString(c, "NOOP\r\n"); err != nil {
			t.Fatalf("write after %v", err)
		}
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("connection ended without 421: %v", err)
		}
		if strings.HasPrefix(line, "421 4.4.2 ") {
			break
		}
		if !strings.HasPrefix(line, "250 ") {
			t.Fatalf("NOOP: %q", line)
		}
	}
	if line, err := r.ReadString('\n'); err == nil {
		t.Fatalf("after 421 the connection is still open: %q", line)
	}
}
