package main

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/config"
)

// Slowloris (catalogue S13): clients that connect and then send nothing, or
// a byte at a time, are cut off by deadlines and caps while normal traffic
// goes on. The deadlines are short here (a second or two) so that the test
// is; what it checks is that each slow client is cut, not how fast.

// slowStack is a gateway with short read deadlines.
func slowStack(t *testing.T) *stack {
	return startStack(t, func(c *config.Config) {
		c.SMTP.ReadTimeout = time.Second
		c.SMTP.DataTimeout = 2 * time.Second
		c.HTTP.ReadHeaderTimeout = time.Second
		c.HTTP.ReadTimeout = 2 * time.Second
	})
}

// dialFrom opens a TCP connection to addr from the loopback address local,
// with a deadline that only detects a hang.
func dialFrom(t *testing.T, local, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return c
}

// trickle writes s a byte every interval until the write fails (the server
// closed the connection) or s is all sent, and reports whether it was cut.
func trickle(c net.Conn, s string, interval time.Duration) (cut bool) {
	for i := range len(s) {
		if _, err := c.Write([]byte{s[i]}); err != nil {
			return true
		}
		time.Sleep(interval) // the slow client's pace, not a wait for the server
	}
	return false
}

// TestSMTPSlowloris: 300 idle connections (100 each from three addresses,
// the per-address cap) do not keep a normal client from sending; the next
// connection from a full address gets 421 4.7.0; idle connections are
// answered 421 at the read deadline; a command trickled a byte at a time is
// cut; a message trickled below the data deadline gets a temporary 451 that
// names no internal detail.
func TestSMTPSlowloris(t *testing.T) {
	s := slowStack(t)
	var idle []net.Conn
	for _, local := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"} {
		for range 100 {
			idle = append(idle, dialFrom(t, local, s.addrs.SMTP))
		}
	}
	for _, c := range idle {
		if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.HasPrefix(line, "220 ") {
			t.Fatalf("idle connection's greeting: %q %v", line, err)
		}
	}
	over := dialFrom(t, "127.0.0.2", s.addrs.SMTP)
	if line, _ := bufio.NewReader(over).ReadString('\n'); !strings.HasPrefix(line, "421 4.7.0 ") {
		t.Fatalf("connection 101 from one address: %q", line)
	}

	c := s.smtpClient(true, liveKey)
	if err := c.SendMail(s.From, []string{s.To}, strings.NewReader("From: "+s.From+"\r\nTo: "+s.To+"\r\nSubject: beside 300 idle\r\n\r\nhi\r\n")); err != nil {
		t.Fatalf("send beside 300 idle connections: %v", err)
	}
	s.sink.Wait(t, 1, 20*time.Second)

	for _, c := range idle[:3] {
		line, _ := bufio.NewReader(c).ReadString('\n')
		if !strings.HasPrefix(line, "421 4.4.2 ") {
			t.Fatalf("idle connection past the read deadline: %q", line)
		}
	}

	slow := dialFrom(t, "127.0.0.5", s.addrs.SMTP)
	r := bufio.NewReader(slow)
	_, _ = r.ReadString('\n')
	if !trickle(slow, "NOOP "+strings.Repeat("x", 60)+"\r\n", 200*time.Millisecond) {
		t.Fatal("a command trickled a byte every 200 ms for 13 s was not cut by a 1 s read deadline")
	}

	data := smtpTLSSession(t, s, "127.0.0.6")
	fmt.Fprintf(data, "MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n", s.From, s.To)
	for _, want := range []string{"250", "250", "354"} {
		if line := readReply(t, data); !strings.HasPrefix(line, want) {
			t.Fatalf("want %s, got %q", want, line)
		}
	}
	go trickle(data, "From: "+s.From+"\r\n"+strings.Repeat("x", 200), 200*time.Millisecond)
	reply := readReply(t, data)
	if !strings.HasPrefix(reply, "451 4.4.2 ") {
		t.Fatalf("a message trickled past the data deadline: %q, want 451 4.4.2", reply)
	}
	for _, leak := range []string{"i/o timeout", "127.0.0.1", "tcp"} {
		if strings.Contains(reply, leak) {
			t.Errorf("the reply names %q: %q", leak, reply)
		}
	}
}

// smtpTLSSession is a raw implicit-TLS session from local, greeted and
// authenticated, for a test that writes the protocol itself.
func smtpTLSSession(t *testing.T, s *stack, local string) *tls.Conn {
	t.Helper()
	c := tls.Client(dialFrom(t, local, s.addrs.SMTPTLS), &tls.Config{InsecureSkipVerify: true})
	readReply(t, c)
	fmt.Fprintf(c, "EHLO client.test\r\n")
	readReply(t, c)
	fmt.Fprintf(c, "AUTH PLAIN %s\r\n", base64.StdEncoding.EncodeToString([]byte("\x00apikey\x00"+liveKey)))
	if line := readReply(t, c); !strings.HasPrefix(line, "235") {
		t.Fatalf("AUTH: %q", line)
	}
	return c
}

// readReply reads one SMTP reply, multi-line or not, a byte at a time (so
// that nothing after it is buffered away), and returns its last line.
func readReply(t *testing.T, c io.Reader) string {
	t.Helper()
	var line []byte
	b := make([]byte, 1)
	for {
		if _, err := c.Read(b); err != nil {
			t.Fatalf("reading a reply: %v (so far %q)", err, line)
		}
		line = append(line, b[0])
		if b[0] != '\n' {
			continue
		}
		if len(line) > 3 && line[3] == ' ' {
			return string(line)
		}
		line = line[:0]
	}
}

// TestHTTPSlowloris: 200 connections sending their headers slowly are closed
// at http.read_header_timeout, a body sent slowly at http.read_timeout, and
// a normal API call succeeds meanwhile.
func TestHTTPSlowloris(t *testing.T) {
	s := slowStack(t)
	var slow []net.Conn
	for i := range 200 {
		c := dialFrom(t, fmt.Sprintf("127.0.1.%d", i%50+1), s.addrs.HTTP)
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: gateway.test\r\nX-Slow: "); err != nil {
			t.Fatal(err)
		}
		slow = append(slow, c)
	}
	if resp := s.Call("GET", "/v1/emails", liveKey, nil, nil); resp.Code != http.StatusOK {
		t.Fatalf("API call beside 200 slow clients: %d %s", resp.Code, resp.Body)
	}
	for _, c := range slow {
		if _, err := io.ReadAll(c); err != nil {
			t.Fatalf("a client with unfinished headers was not closed: %v", err)
		}
	}

	body := dialFrom(t, "127.0.0.1", s.addrs.HTTP)
	fmt.Fprintf(body, "POST /v1/emails HTTP/1.1\r\nHost: gateway.test\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{", liveKey)
	if !trickle(body, `"subject": "`+strings.Repeat("x", 200), 100*time.Millisecond) {
		t.Fatal("a body trickled 10 bytes a second for 20 s was not cut by a 2 s read deadline")
	}
}
