package smtpd

import (
	"bufio"
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
