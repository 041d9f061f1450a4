package main

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/pires/go-proxyproto"

	"github.com/pigeonpost/pigeonpost/config"
	"github.com/pigeonpost/pigeonpost/internal/testkit"
)

// With smtp.proxy_protocol the gateway behind a load balancer sees the
// client named by the PROXY header: it delivers its mail, logs its
// address, and caps its connections, while every connection comes from
// 127.0.0.1. A connection without the header is closed unanswered.
func TestSMTPBehindProxy(t *testing.T) {
	s := startStack(t, func(c *config.Config) {
		c.SMTP.ProxyProtocol, c.SMTP.ProxyTrusted, c.SMTP.MaxConnectionsPerIP = true, []string{"127.0.0.1"}, 1
	})
	dial := func(client string) net.Conn {
		t.Helper()
		c, err := net.DialTimeout("tcp", s.addrs.SMTP, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(20 * time.Second)) // a hang detector
		if client == "" {
			return c
		}
		h := proxyproto.HeaderProxyFromAddrs(2, &net.TCPAddr{IP: net.ParseIP(client), Port: 40000}, c.RemoteAddr())
		if _, err := h.WriteTo(c); err != nil {
			t.Fatal(err)
		}
		return c
	}

	sc, err := smtp.NewClientStartTLS(dial("203.0.113.7"), testkit.InsecureTLS())
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if err := sc.Auth(sasl.NewPlainClient("", "apikey", liveKey)); err != nil {
		t.Fatal(err)
	}
	reply, err := testkit.SendMail(sc, s.From, []string{s.To}, testkit.SimpleMessage(s.From, s.To, "through the balancer"))
	if err != nil {
		t.Fatal(err)
	}
	s.waitStatus(queuedID(t, reply), "delivered")
	_, err = testkit.SendMail(sc, s.From, []string{s.To}, testkit.SimpleMessage("hello@unverified.test", s.To, "x"))
	testkit.WantSMTPError(t, err, 550, smtp.EnhancedCode{5, 7, 1})
	if logs := s.logs.String(); !strings.Contains(logs, `msg="message refused" ip=203.0.113.7 `) {
		t.Errorf("the refusal is not logged with the client's address:\n%s", logs)
	}

	if line, _ := bufio.NewReader(dial("203.0.113.7")).ReadString('\n'); !strings.HasPrefix(line, "421 4.7.0 ") {
		t.Errorf("second connection of 203.0.113.7 (smtp.max_connections_per_ip 1): %q", line)
	}
	bare := dial("")
	if _, err := io.WriteString(bare, "EHLO client.test\r\n"); err != nil {
		t.Fatal(err)
	}
	if got, _ := io.ReadAll(bare); len(got) != 0 {
		t.Errorf("a connection without a PROXY header was answered %q", got)
	}
}
