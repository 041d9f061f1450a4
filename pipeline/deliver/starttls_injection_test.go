package deliver

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
)

// TestDeliverSTARTTLSInjection (catalogue S2, client side): a destination,
// or a man in the middle, answers STARTTLS with "220" and a plaintext reply
// in the same packet. The plaintext arrived before TLS, so it must not be
// read as the reply to anything sent over TLS: here the injected reply is a
// 554, which would fail the delivery if it were taken as the answer to the
// EHLO after TLS.
func TestDeliverSTARTTLSInjection(t *testing.T) {
	cert, err := testkit.SelfSignedCert("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		afterTLS []string // commands read over TLS
		data     []byte
		err      error
	}
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		var res result
		res.afterTLS, res.data, res.err = injectingMX(c, cert)
		done <- res
	}()

	tr := &Transport{Hostname: "pigeon.test", RelayHost: ln.Addr().String(), Timeout: 20 * time.Second}
	if err := tr.Deliver(context.Background(), testEnvelope()); err != nil {
		t.Fatalf("Deliver took the injected plaintext as a reply: %v", err)
	}
	res := <-done
	if res.err != nil {
		t.Fatalf("fake MX: %v", res.err)
	}
	var verbs []string
	for _, cmd := range res.afterTLS {
		verb, _, _ := strings.Cut(cmd, " ")
		verbs = append(verbs, strings.ToUpper(verb))
	}
	if got := strings.Join(verbs, " "); !strings.HasPrefix(got, "EHLO MAIL RCPT DATA") {
		t.Errorf("commands over TLS: %q, want EHLO MAIL RCPT DATA first", got)
	}
	if !bytes.Equal(res.data, wantWire) {
		t.Errorf("data %q, want %q", res.data, wantWire)
	}
}

// injectingMX serves one SMTP session on c whose answer to STARTTLS carries
// an injected 554 after the 220, then goes on over TLS until the message
// is queued, and returns the commands it read over TLS and the message.
func injectingMX(c net.Conn, cert tls.Certificate) (afterTLS []string, data []byte, err error) {
	r := bufio.NewReader(c)
	line := func() (string, error) {
		s, err := r.ReadString('\n')
		return strings.TrimRight(s, "\r\n"), err
	}
	if _, err := io.WriteString(c, "220 mx.test ESMTP\r\n"); err != nil {
		return nil, nil, err
	}
	if _, err := line(); err != nil { // EHLO
		return nil, nil, err
	}
	if _, err := io.WriteString(c, "250-mx.test\r\n250 STARTTLS\r\n"); err != nil {
		return nil, nil, err
	}
	if cmd, err := line(); err != nil || !strings.EqualFold(cmd, "STARTTLS") {
		return nil, nil, err
	}
	if _, err := io.WriteString(c, "220 2.0.0 Ready to start TLS\r\n554 5.7.0 injected before TLS\r\n"); err != nil {
		return nil, nil, err
	}
	tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}})
	r = bufio.NewReader(tc)
	replies := map[string]string{"EHLO": "250 mx.test\r\n", "MAIL": "250 2.1.0 Ok\r\n", "RCPT": "250 2.1.5 Ok\r\n",
		"DATA": "354 go ahead\r\n", "QUIT": "221 bye\r\n", "RSET": "250 Ok\r\n", "NOOP": "250 Ok\r\n"}
	for {
		cmd, err := line()
		if err != nil {
			return afterTLS, data, nil // the client hung up
		}
		afterTLS = append(afterTLS, cmd)
		verb, _, _ := strings.Cut(strings.ToUpper(cmd), " ")
		reply, ok := replies[verb]
		if !ok {
			reply = "500 5.5.1 unexpected\r\n"
		}
		if _, err := io.WriteString(tc, reply); err != nil {
			return afterTLS, data, err
		}
		switch verb {
		case "DATA":
			var body bytes.Buffer
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return afterTLS, data, err
				}
				if l == ".\r\n" {
					break
				}
				body.WriteString(strings.TrimPrefix(l, "."))
			}
			_, err := io.WriteString(tc, "250 2.0.0 queued\r\n")
			return afterTLS, body.Bytes(), err // the client may keep the session: do not wait for QUIT
		case "QUIT":
			return afterTLS, data, nil
		}
	}
}
