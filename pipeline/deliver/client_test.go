package deliver

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
)

const testBody = "From: alice@example.test\nTo: bob@dest.test\nSubject: hi\n\nline one\n.leading dot\n..two dots\nlast"

// wantWire is testBody as the server sees it after DATA (CRLF, dots unstuffed).
var wantWire = crlf(testBody + "\n")

func testTransport(sink *testkit.Sink) *Transport {
	return &Transport{Hostname: "pigeon.test", RelayHost: sink.Addr(), Timeout: 30 * time.Second}
}

func testEnvelope() Envelope {
	return Envelope{From: "alice@example.test", To: "bob@dest.test", Data: []byte(testBody)}
}

func TestDeliverRelay(t *testing.T) {
	sink := testkit.StartSink(t, testkit.SinkOptions{})
	if err := testTransport(sink).Deliver(context.Background(), testEnvelope()); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	msgs := sink.Messages()
	if len(msgs) != 1 {
		t.Fatalf("sink got %d messages, want 1", len(msgs))
	}
	m := msgs[0]
	if m.Helo != "pigeon.test" || m.From != "alice@example.test" || len(m.To) != 1 || m.To[0] != "bob@dest.test" {
		t.Errorf("envelope %+v", m)
	}
	if !bytes.Equal(m.Data, wantWire) {
		t.Errorf("data %q, want %q", m.Data, wantWire)
	}
	if m.TLS {
		t.Error("TLS without STARTTLS")
	}
}

// TestDeliverPrefix: the prefix (the DKIM-Signature) goes out right before
// the message, as one message.
func TestDeliverPrefix(t *testing.T) {
	sink := testkit.StartSink(t, testkit.SinkOptions{})
	env := testEnvelope()
	env.Prefix = []byte("DKIM-Signature: v=1; a=rsa-sha256;\r\n b=abc\r\n")
	if err := testTransport(sink).Deliver(context.Background(), env); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	msgs := sink.Messages()
	if len(msgs) != 1 {
		t.Fatalf("sink got %d messages, want 1", len(msgs))
	}
	if want := append(append([]byte{}, env.Prefix...), wantWire...); !bytes.Equal(msgs[0].Data, want) {
		t.Errorf("data %q, want %q", msgs[0].Data, want)
	}
}

func TestDeliverNullSender(t *testing.T) {
	sink := testkit.StartSink(t, testkit.SinkOptions{})
	env := testEnvelope()
	env.From = ""
	if err := testTransport(sink).Deliver(context.Background(), env); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	if msgs := sink.Messages(); len(msgs) != 1 || msgs[0].From != "" {
		t.Fatalf("received %+v", msgs)
	}
}

func TestDeliverMX(t *testing.T) {
	sink := testkit.StartSink(t, testkit.SinkOptions{})
	dnsSrv := testkit.StartDNS(t)
	dnsSrv.SetMX("dest.test", map[string]uint16{"mx1.example.test": 10})
	dnsSrv.SetA("mx1.example.test", "127.0.0.1")
	tr := &Transport{
		Hostname:     "pigeon.test",
		Port:         sink.Port(),
		Resolver:     &Resolver{Addr: dnsSrv.Addr(), Timeout: 5 * time.Second},
		Timeout:      30 * time.Second,
		AllowPrivate: true, // the sink is on loopback
	}
	if err := tr.Deliver(context.Background(), testEnvelope()); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	if msgs := sink.Messages(); len(msgs) != 1 || !bytes.Equal(msgs[0].Data, wantWire) {
		t.Fatalf("received %+v", msgs)
	}
}

func TestDeliverNextMXOnConnectionRefused(t *testing.T) {
	sink := testkit.StartSink(t, testkit.SinkOptions{})
	dnsSrv := testkit.StartDNS(t)
	// mx1 is preferred, but nothing listens on 127.0.0.2.
	dnsSrv.SetMX("dest.test", map[string]uint16{"mx1.dest.test": 10, "mx2.dest.test": 20})
	dnsSrv.SetA("mx1.dest.test", "127.0.0.2")
	dnsSrv.SetA("mx2.dest.test", "127.0.0.1")
	// only a dead host
	dnsSrv.SetMX("dead.test", map[string]uint16{"mx1.dest.test": 10})
	// an MX host that does not resolve, then a good one
	dnsSrv.SetMX("broken.test", map[string]uint16{"nowhere.broken.test": 10, "mx2.dest.test": 20})
	tr := &Transport{
		Hostname:     "pigeon.test",
		Port:         sink.Port(),
		Resolver:     &Resolver{Addr: dnsSrv.Addr(), Timeout: 5 * time.Second},
		Timeout:      30 * time.Second,
		AllowPrivate: true, // the sink is on loopback
	}
	ctx := context.Background()

	if err := tr.Deliver(ctx, testEnvelope()); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	if n := len(sink.Messages()); n != 1 {
		t.Fatalf("sink got %d messages, want 1", n)
	}

	env := testEnvelope()
	env.To = "bob@broken.test"
	if err := tr.Deliver(ctx, env); err != nil {
		t.Fatalf("Deliver past unresolvable MX: %v", err)
	}

	env.To = "bob@dead.test"
	err := tr.Deliver(ctx, env)
	e := asError(t, err)
	if !e.Temporary || e.Code != 0 || e.Enhanced != [3]int{4, 4, 1} || e.Err == nil {
		t.Fatalf("dead host: %+v", e)
	}
	if !strings.Contains(e.Message, "mx1.dest.test") {
		t.Errorf("message %q does not name the host", e.Message)
	}
}

func TestDeliverSTARTTLS(t *testing.T) {
	for _, require := range []bool{false, true} {
		sink := testkit.StartSink(t, testkit.SinkOptions{TLS: true})
		tr := testTransport(sink)
		tr.RequireTLS = require
		if err := tr.Deliver(context.Background(), testEnvelope()); err != nil {
			t.Fatalf("RequireTLS=%v: Deliver: %v", require, err)
		}
		msgs := sink.Messages()
		if len(msgs) != 1 || !msgs[0].TLS {
			t.Fatalf("RequireTLS=%v: received %+v, want one message over TLS", require, msgs)
		}
		if msgs[0].Helo != "pigeon.test" || !bytes.Equal(msgs[0].Data, wantWire) {
			t.Errorf("RequireTLS=%v: received %+v", require, msgs[0])
		}
	}
}

// TestDeliverSTARTTLSStuffed: the message is written to the TLS connection,
// not to the TCP connection under it: one with stuffed dots and bare LFs,
// several times the size of writeData's buffer, arrives whole over STARTTLS,
// also over the kept session.
func TestDeliverSTARTTLSStuffed(t *testing.T) {
	sink := testkit.StartSink(t, testkit.SinkOptions{TLS: true})
	tr := testTransport(sink)
	tr.RequireTLS = true
	defer tr.CloseIdle()
	var body strings.Builder
	body.WriteString("From: alice@example.test\nSubject: dots\n\n")
	for i := 0; body.Len() < 3*dataBufSize; i++ {
		fmt.Fprintf(&body, ".line %d\n..\n.\nplain\r\n\n", i)
	}
	body.WriteString(".last")
	env := testEnvelope()
	env.Prefix = []byte("DKIM-Signature: v=1; a=rsa-sha256;\r\n b=abc\r\n")
	env.Data = []byte(body.String())
	want := append(append([]byte{}, env.Prefix...), crlf(strings.ReplaceAll(body.String(), "\r\n", "\n")+"\n")...)
	sessions := 0
	for i := range 2 {
		if err := tr.Deliver(context.Background(), env); err != nil {
			t.Fatalf("message %d: Deliver: %v", i, err)
		}
		if i == 0 {
			sessions = sink.Sessions()
		}
	}
	if n := sink.Sessions(); n != sessions {
		t.Errorf("%d sessions after two messages, want the first one's %d", n, sessions)
	}
	msgs := sink.Messages()
	if len(msgs) != 2 {
		t.Fatalf("sink got %d messages, want 2", len(msgs))
	}
	for i, m := range msgs {
		if !m.TLS {
			t.Errorf("message %d not over TLS", i)
		}
		if !bytes.Equal(m.Data, want) {
			t.Errorf("message %d: %s", i, diff(m.Data, want))
		}
	}
}

func TestDeliverSTARTTLSVerifyingConfig(t *testing.T) {
	// A verifying TLSConfig rejects the self-signed certificate: the
	// handshake fails, and without RequireTLS the message goes in plaintext.
	sink := testkit.StartSink(t, testkit.SinkOptions{TLS: true})
	tr := testTransport(sink)
	tr.TLSConfig = &tls.Config{ServerName: "sink.test"}
	if err := tr.Deliver(context.Background(), testEnvelope()); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	if msgs := sink.Messages(); len(msgs) != 1 || msgs[0].TLS {
		t.Fatalf("received %+v, want one plaintext message", msgs)
	}
}

func TestDeliverTLSFailures(t *testing.T) {
	tests := []struct {
		name     string
		opts     testkit.SinkOptions
		require  bool
		wantErr  bool
		sessions int // SMTP sessions the sink saw
	}{
		{name: "no STARTTLS, required", opts: testkit.SinkOptions{}, require: true, wantErr: true, sessions: 1},
		{name: "broken TLS, required", opts: testkit.SinkOptions{BrokenTLS: true}, require: true, wantErr: true, sessions: 1},
		{name: "broken TLS, opportunistic", opts: testkit.SinkOptions{BrokenTLS: true}, sessions: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := testkit.StartSink(t, tt.opts)
			tr := testTransport(sink)
			tr.RequireTLS = tt.require
			err := tr.Deliver(context.Background(), testEnvelope())
			if n := sink.Sessions(); n != tt.sessions {
				t.Errorf("sessions = %d, want %d", n, tt.sessions)
			}
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("Deliver: %v", err)
				}
				if msgs := sink.Messages(); len(msgs) != 1 || msgs[0].TLS {
					t.Fatalf("received %+v, want one plaintext message", msgs)
				}
				return
			}
			e := asError(t, err)
			if !e.Temporary || e.Enhanced[0] != 4 {
				t.Fatalf("error %+v, want temporary", e)
			}
			if n := len(sink.Messages()); n != 0 {
				t.Fatalf("sink got %d messages in plaintext", n)
			}
		})
	}
}

func TestDeliverReplies(t *testing.T) {
	tests := []struct {
		name      string
		stage     string // the sink answers reply here, in every session
		reply     *smtp.SMTPError
		temporary bool
		code      int
		enhanced  [3]int
		message   string
	}{
		{
			name:  "450 at RCPT",
			stage: "rcpt", reply: &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 2, 1}, Message: "greylisted, try later"},
			temporary: true, code: 450, enhanced: [3]int{4, 2, 1}, message: "greylisted, try later",
		},
		{
			name:  "550 at RCPT without enhanced code",
			stage: "rcpt", reply: &smtp.SMTPError{Code: 550, EnhancedCode: smtp.NoEnhancedCode, Message: "no such user"},
			code:     550,
			enhanced: [3]int{5, 0, 0}, message: "no such user",
		},
		{
			name:  "550 at MAIL",
			stage: "mail", reply: &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "sender rejected"},
			code: 550, enhanced: [3]int{5, 7, 1}, message: "sender rejected",
		},
		{
			name:  "554 at DATA",
			stage: "data", reply: &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "message looks like spam"},
			code: 554, enhanced: [3]int{5, 7, 1}, message: "message looks like spam",
		},
		{
			name:  "451 at DATA",
			stage: "data", reply: &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "local error"},
			temporary: true, code: 451, enhanced: [3]int{4, 3, 0}, message: "local error",
		},
		{
			name:  "421 at RCPT",
			stage: "rcpt", reply: &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 4, 5}, Message: "too busy"},
			temporary: true, code: 421, enhanced: [3]int{4, 4, 5}, message: "too busy",
		},
		{
			name:  "421 at EHLO",
			stage: "helo", reply: &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "go away"},
			temporary: true, code: 421, enhanced: [3]int{4, 7, 0}, message: "go away",
		},
		{
			// Failures before the transaction never bounce.
			name:  "554 at EHLO",
			stage: "helo", reply: &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "not welcome"},
			temporary: true, code: 554, enhanced: [3]int{4, 7, 1}, message: "not welcome",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := testkit.StartSink(t, testkit.SinkOptions{})
			sink.Reply(tt.stage, tt.reply, -1)
			err := testTransport(sink).Deliver(context.Background(), testEnvelope())
			e := asError(t, err)
			if e.Temporary != tt.temporary || e.Code != tt.code || e.Enhanced != tt.enhanced || e.Message != tt.message {
				t.Fatalf("error %+v\nwant temporary=%v code=%d enhanced=%v message=%q", e, tt.temporary, tt.code, tt.enhanced, tt.message)
			}
			host, _, _ := strings.Cut(sink.Addr(), ":")
			if e.Host != host {
				t.Errorf("Host = %q, want %q", e.Host, host)
			}
			var se *smtp.SMTPError
			if !errors.As(err, &se) || se.Code != tt.code {
				t.Errorf("cause is not the SMTP reply: %v", e.Err)
			}
			if n := len(sink.Messages()); n != 0 {
				t.Errorf("sink recorded %d messages", n)
			}
		})
	}
}

func TestDeliverEnvelopeErrors(t *testing.T) {
	dnsSrv := testkit.StartDNS(t)
	dnsSrv.SetMX("null.test", map[string]uint16{".": 0})
	tr := &Transport{
		Hostname:     "pigeon.test",
		Port:         1, // never dialled
		Resolver:     &Resolver{Addr: dnsSrv.Addr(), Timeout: 5 * time.Second},
		Timeout:      30 * time.Second,
		AllowPrivate: true, // the sink is on loopback
	}
	tests := []struct {
		to, from string
		enhanced [3]int
	}{
		{to: "no-domain", enhanced: [3]int{5, 1, 3}},
		{to: "bob@", enhanced: [3]int{5, 1, 3}},
		{to: "bob@dest.test\r\nRCPT TO:<eve@evil.test>", enhanced: [3]int{5, 1, 3}},
		{to: "bob@dest.test", from: "a@b>", enhanced: [3]int{5, 1, 7}},
		{to: "bob@null.test", enhanced: [3]int{5, 1, 10}},
		{to: "bob@nx.test", enhanced: [3]int{5, 1, 2}},
	}
	for _, tt := range tests {
		err := tr.Deliver(context.Background(), Envelope{From: tt.from, To: tt.to, Data: []byte(testBody)})
		e := asError(t, err)
		if e.Temporary || e.Enhanced != tt.enhanced {
			t.Errorf("To %q: %+v, want permanent %v", tt.to, e, tt.enhanced)
		}
	}
}

func TestDeliverCancelled(t *testing.T) {
	sink := testkit.StartSink(t, testkit.SinkOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := testTransport(sink).Deliver(ctx, testEnvelope())
	e := asError(t, err)
	if !e.Temporary || !errors.Is(err, context.Canceled) {
		t.Fatalf("error %+v, want temporary cancellation", e)
	}
	if n := sink.Sessions(); n != 0 {
		t.Fatalf("sink saw %d sessions", n)
	}
}

func TestErrorString(t *testing.T) {
	cause := errors.New("dial tcp: refused")
	tests := []struct {
		e    *Error
		want string
	}{
		{&Error{Code: 550, Enhanced: [3]int{5, 1, 1}, Message: "no such user", Host: "mx.test", Err: cause}, "deliver: mx.test: 550 5.1.1 no such user"},
		{&Error{Temporary: true, Enhanced: [3]int{4, 4, 1}, Message: "cannot connect", Err: cause}, "deliver: 4.4.1 cannot connect: dial tcp: refused"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
		if !errors.Is(tt.e, cause) {
			t.Errorf("Unwrap does not reach the cause")
		}
	}
}

func TestDeliverNextHostRules(t *testing.T) {
	// Two MX hosts, both the same sink; only the first reply at the stage
	// fails, that is only the first session (one recipient each), so a
	// delivery means the second host was tried.
	tests := []struct {
		name      string
		stage     string
		reply     *smtp.SMTPError
		delivered bool
		sessions  int
		code      int
	}{
		{name: "421 at EHLO: next host", stage: "helo", reply: &smtp.SMTPError{Code: 421, Message: "busy"}, delivered: true, sessions: 2},
		{name: "450 at EHLO: next host", stage: "helo", reply: &smtp.SMTPError{Code: 450, Message: "later"}, delivered: true, sessions: 2},
		{name: "554 at EHLO: next host", stage: "helo", reply: &smtp.SMTPError{Code: 554, Message: "no"}, delivered: true, sessions: 2},
		{name: "421 at RCPT: next host", stage: "rcpt", reply: &smtp.SMTPError{Code: 421, Message: "closing"}, delivered: true, sessions: 2},
		{name: "450 at RCPT: stop", stage: "rcpt", reply: &smtp.SMTPError{Code: 450, Message: "greylisted"}, sessions: 1, code: 450},
		{name: "550 at RCPT: stop", stage: "rcpt", reply: &smtp.SMTPError{Code: 550, Message: "unknown"}, sessions: 1, code: 550},
		{name: "552 at DATA: stop", stage: "data", reply: &smtp.SMTPError{Code: 552, Message: "too big"}, sessions: 1, code: 552},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := testkit.StartSink(t, testkit.SinkOptions{})
			sink.Reply(tt.stage, tt.reply, 1)
			dnsSrv := testkit.StartDNS(t)
			dnsSrv.SetMX("dest.test", map[string]uint16{"mx1.dest.test": 10, "mx2.dest.test": 20})
			dnsSrv.SetA("mx1.dest.test", "127.0.0.1")
			dnsSrv.SetA("mx2.dest.test", "127.0.0.1")
			tr := &Transport{
				Hostname:     "pigeon.test",
				Port:         sink.Port(),
				Resolver:     &Resolver{Addr: dnsSrv.Addr(), Timeout: 5 * time.Second},
				Timeout:      30 * time.Second,
				AllowPrivate: true,
			}
			err := tr.Deliver(context.Background(), testEnvelope())
			if n := sink.Sessions(); n != tt.sessions {
				t.Errorf("sessions = %d, want %d", n, tt.sessions)
			}
			if tt.delivered {
				if err != nil {
					t.Fatalf("Deliver: %v", err)
				}
				if n := len(sink.Messages()); n != 1 {
					t.Fatalf("sink got %d messages", n)
				}
				return
			}
			if e := asError(t, err); e.Code != tt.code || e.Host != "mx1.dest.test" {
				t.Fatalf("error %+v, want code %d from mx1.dest.test", e, tt.code)
			}
		})
	}
}

func TestDeliverCancelMidSession(t *testing.T) {
	sink := testkit.StartSink(t, testkit.SinkOptions{})
	entered, release := sink.Hold("rcpt")
	defer release()

	tr := testTransport(sink)
	tr.Timeout = 10 * time.Minute // only the cancellation can end the wait
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-entered
		cancel()
	}()
	err := tr.Deliver(ctx, testEnvelope())
	e := asError(t, err)
	if !e.Temporary || e.Code != 0 || !errors.Is(err, context.Canceled) {
		t.Fatalf("error %+v, want temporary cancellation", e)
	}
}

// Without AllowPrivate, a recipient domain whose MX (or an address literal)
// is at a loopback, private or link-local address is refused before any
// connection, permanently: anyone could otherwise reach the internal
// network's port 25 through the gateway. The relay host is the operator's.
func TestDeliverRefusesPrivateDestinations(t *testing.T) {
	sink := testkit.StartSink(t, testkit.SinkOptions{})
	dnsSrv := testkit.StartDNS(t)
	dnsSrv.SetMX("example.test", map[string]uint16{"mx.example.test": 10})
	dnsSrv.SetA("mx.example.test", "127.0.0.1")
	tr := &Transport{Hostname: "pigeon.test", Port: sink.Port(), Resolver: &Resolver{Addr: dnsSrv.Addr(), Timeout: 5 * time.Second}, Timeout: 30 * time.Second}
	for _, to := range []string{"user@example.test", "root@[127.0.0.1]", "root@[IPv6:::ffff:10.0.0.1]", "root@[IPv6:::1]"} {
		env := testEnvelope()
		env.To = to
		err := tr.Deliver(context.Background(), env)
		var de *Error
		if !errors.As(err, &de) || de.Temporary || de.Enhanced != enhPrivateDest || !strings.Contains(de.Message, "allow_private_destinations") {
			t.Errorf("%s: %v", to, err)
		}
	}
	if n := sink.Stats().Connections; n != 0 {
		t.Errorf("%d connections reached the sink", n)
	}
	relay := &Transport{Hostname: "pigeon.test", RelayHost: sink.Addr(), Timeout: 30 * time.Second}
	if err := relay.Deliver(context.Background(), testEnvelope()); err != nil {
		t.Errorf("through a relay host on loopback: %v", err)
	}
}
