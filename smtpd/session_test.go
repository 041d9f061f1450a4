package smtpd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline"
)

// TestSMTPReplies: the protocol contract of the submission port, whatever
// the pipeline decides.
func TestSMTPReplies(t *testing.T) {
	s := startServer(t)

	t.Run("AUTH is not advertised before STARTTLS and refused with 5.7.x", func(t *testing.T) {
		c := s.greeted(t)
		if ok, _ := c.Extension("AUTH"); ok {
			t.Error("AUTH advertised before TLS")
		}
		if ok, _ := c.Extension("STARTTLS"); !ok {
			t.Error("STARTTLS not advertised")
		}
		err := c.Auth(sasl.NewPlainClient("", "apikey", testKey))
		testkit.WantSMTPError(t, err, 530, smtp.EnhancedCode{5, 7, 0})
		if asked := s.pipe.asked(); len(asked) != 0 {
			t.Errorf("AUTH before TLS looked %d keys up", len(asked))
		}
	})
	t.Run("AUTH PLAIN for another identity is 535 5.7.8 and looks nothing up", func(t *testing.T) {
		c := s.tlsClient(t)
		before := len(s.pipe.asked())
		testkit.WantSMTPError(t, c.Auth(sasl.NewPlainClient("victim", "apikey", testKey)), 535, smtp.EnhancedCode{5, 7, 8})
		if asked := s.pipe.asked(); len(asked) != before {
			t.Errorf("AUTH with authzid ≠ authcid looked %d keys up", len(asked)-before)
		}
	})
	t.Run("a second AUTH after success is 503", func(t *testing.T) {
		c := s.client(t)
		err := c.Auth(sasl.NewPlainClient("", "apikey", testKey))
		testkit.WantSMTPError(t, err, 503, smtp.EnhancedCode{5, 5, 1})
	})
	t.Run("MAIL before STARTTLS is 530 5.7.0", func(t *testing.T) {
		c := s.greeted(t)
		testkit.WantSMTPError(t, c.Mail(testFrom, nil), 530, smtp.EnhancedCode{5, 7, 0})
	})
	t.Run("after STARTTLS the server advertises its extensions", func(t *testing.T) {
		c := s.tlsClient(t)
		for _, ext := range []string{"AUTH", "SIZE", "PIPELINING", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES"} {
			if ok, _ := c.Extension(ext); !ok {
				t.Errorf("%s not advertised after TLS", ext)
			}
		}
		if _, params := c.Extension("AUTH"); !strings.Contains(params, "PLAIN") || !strings.Contains(params, "LOGIN") {
			t.Errorf("AUTH %q lacks PLAIN or LOGIN", params)
		}
	})
	t.Run("MAIL before AUTH is 530 5.7.0", func(t *testing.T) {
		c := s.tlsClient(t)
		testkit.WantSMTPError(t, c.Mail(testFrom, nil), 530, smtp.EnhancedCode{5, 7, 0})
	})
	t.Run("bad credentials are 535 5.7.8", func(t *testing.T) {
		c := s.tlsClient(t)
		testkit.WantSMTPError(t, c.Auth(sasl.NewPlainClient("", "apikey", "sp_live_wrong")), 535, smtp.EnhancedCode{5, 7, 8})
		testkit.WantSMTPError(t, c.Auth(sasl.NewPlainClient("", "someone", testKey)), 535, smtp.EnhancedCode{5, 7, 8})
		// The third failure of a session cuts it: guessing takes a new
		// connection each time (the pipeline locks out the address).
		testkit.WantSMTPError(t, c.Auth(sasl.NewPlainClient("other", "apikey", testKey)), 421, smtp.EnhancedCode{4, 7, 0})
		if err := c.Noop(); err == nil {
			t.Error("the session is still open after its third failed AUTH")
		}
	})
	t.Run("an unknown mechanism is 504 5.5.4", func(t *testing.T) {
		c := s.tlsClient(t)
		testkit.WantSMTPError(t, c.Auth(sasl.NewAnonymousClient("x")), 504, smtp.EnhancedCode{5, 5, 4})
	})
	t.Run("AUTH LOGIN works", func(t *testing.T) {
		c := s.tlsClient(t)
		if err := c.Auth(sasl.NewLoginClient("apikey", testKey)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("over the size limit is 552 5.3.4", func(t *testing.T) {
		c := s.client(t)
		big := testkit.SimpleMessage(testFrom, testRcpt, "big") + strings.Repeat(strings.Repeat("x", 998)+"\r\n", 1100)
		_, err := testkit.SendMail(c, testFrom, []string{testRcpt}, big)
		testkit.WantSMTPError(t, err, 552, smtp.EnhancedCode{5, 3, 4})
	})
	t.Run("accepted is 250 2.0.0 Ok: queued as em_…", func(t *testing.T) {
		c := s.client(t)
		reply, err := testkit.SendMail(c, testFrom, []string{testRcpt}, testkit.SimpleMessage(testFrom, testRcpt, "ok"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(reply, "2.0.0 Ok: queued as em_") {
			t.Fatalf("reply %q", reply)
		}
	})
	t.Run("implicit TLS on the second listener", func(t *testing.T) {
		c := testkit.DialSMTP(t, s.tlsAddr, testkit.SMTPImplicitTLS, testKey)
		if _, err := testkit.SendMail(c, testFrom, []string{testRcpt}, testkit.SimpleMessage(testFrom, testRcpt, "465")); err != nil {
			t.Fatal(err)
		}
	})
	s.pipe.checkBreaches(t)
}

// TestPipelineFailures: the fake pipeline fails at each stage in turn, and
// the client gets the reply the contract promises at the command where it
// failed. Storage trouble is always temporary, never a credentials error
// and never a permanent 554; a panic is answered 451 and the same session
// then sends a message.
func TestPipelineFailures(t *testing.T) {
	storage := errors.New("redis: dial tcp 10.0.0.7:6379: connection refused")
	cases := []struct {
		group, name string
		at          stage
		err         error
		command     string // where the reply comes
		code        int
		enh         smtp.EnhancedCode
	}{
		{"credentials", "bad key", atAuth, pipeline.ErrAuthFailed, "AUTH", 535, smtp.EnhancedCode{5, 7, 8}},
		{"credentials", "storage down is never 535", atAuth, pipeline.ErrUnavailable.WithCause(storage), "AUTH", 454, smtp.EnhancedCode{4, 7, 0}},
		{"credentials", "unknown error is never 535", atAuth, storage, "AUTH", 454, smtp.EnhancedCode{4, 7, 0}},
		{"credentials", "panic", atAuth, errPanic, "AUTH", 451, smtp.EnhancedCode{4, 3, 0}},

		{"sender", "unverified domain at MAIL FROM", atSender, pipeline.ErrUnverifiedDomain, "MAIL", 550, smtp.EnhancedCode{5, 7, 1}},
		{"sender", "storage down", atSender, pipeline.ErrUnavailable.WithCause(storage), "MAIL", 451, smtp.EnhancedCode{4, 3, 0}},
		{"sender", "panic", atSender, errPanic, "MAIL", 451, smtp.EnhancedCode{4, 3, 0}},

		{"submit", "storage fails during DATA", atSubmit, pipeline.ErrUnavailable.WithCause(storage), "DATA", 451, smtp.EnhancedCode{4, 3, 0}},
		{"submit", "plain error is 451, never 554", atSubmit, storage, "DATA", 451, smtp.EnhancedCode{4, 3, 0}},
		{"submit", "rate limited", atSubmit, pipeline.ErrRateLimited, "DATA", 451, smtp.EnhancedCode{4, 7, 1}},
		{"submit", "storage full", atSubmit, pipeline.ErrStorageFull.WithCause(storage), "DATA", 452, smtp.EnhancedCode{4, 3, 1}},
		{"submit", "From header refused", atSubmit, pipeline.ErrUnverifiedDomain, "DATA", 550, smtp.EnhancedCode{5, 7, 1}},
		{"submit", "panic", atSubmit, errPanic, "DATA", 451, smtp.EnhancedCode{4, 3, 0}},
	}
	s := startServer(t)
	for _, tc := range cases {
		t.Run(tc.group+"/"+tc.name, func(t *testing.T) {
			s.pipe.reset()
			s.pipe.failAt(tc.at, tc.err)
			c := s.tlsClient(t)
			var err error
			if err = c.Auth(sasl.NewPlainClient("", "apikey", testKey)); err == nil || tc.command != "AUTH" {
				if err != nil {
					t.Fatalf("AUTH: %v", err)
				}
				_, err = testkit.SendMail(c, testFrom, []string{testRcpt}, testkit.SimpleMessage(testFrom, testRcpt, tc.name))
			}
			se := testkit.WantSMTPError(t, err, tc.code, tc.enh)
			if strings.Contains(se.Message, "redis") || strings.Contains(se.Message, "10.0.0.7") || strings.Contains(se.Message, "panic") {
				t.Errorf("internal detail in the reply: %q", se.Message)
			}
			if tc.err == errPanic && !strings.Contains(s.logs.String(), `msg="panic in SMTP command" cmd=`+tc.command) {
				t.Errorf("the panic was not logged:\n%s", s.logs.String())
			}

			// The stage heals; the session goes on where it stopped, and the
			// server still greets new connections.
			s.pipe.failAt(tc.at, nil)
			if tc.command == "AUTH" {
				if err := c.Auth(sasl.NewPlainClient("", "apikey", testKey)); err != nil {
					t.Fatalf("AUTH after the failure: %v", err)
				}
			} else if err := c.Reset(); err != nil {
				t.Fatalf("RSET after the failure: %v", err)
			}
			reply, err := testkit.SendMail(c, testFrom, []string{testRcpt}, testkit.SimpleMessage(testFrom, testRcpt, "after"))
			if err != nil || !strings.HasPrefix(reply, "2.0.0 Ok: queued as em_") {
				t.Fatalf("after the failure: %q, %v", reply, err)
			}
			s.greeted(t).Close()
			s.pipe.checkBreaches(t)
		})
	}
}

// TestSubmission: what smtpd hands the pipeline for an accepted message.
func TestSubmission(t *testing.T) {
	s := startServer(t)
	to := []string{"a@example.test", "b@example.test"}
	msg := testkit.SimpleMessage(testFrom, to[0], "two")
	reply, err := testkit.SendMail(s.client(t), testFrom, to, msg)
	if err != nil {
		t.Fatal(err)
	}
	subs := s.pipe.submissions()
	if len(subs) != 1 {
		t.Fatalf("%d submissions", len(subs))
	}
	sub := subs[0]
	if sub.Key != fakeKey || sub.Source != "smtp" || sub.EnvelopeFrom != testFrom ||
		fmt.Sprint(sub.Recipients) != fmt.Sprint(to) || string(sub.Message) != msg {
		t.Errorf("submitted %+v", sub)
	}
	if got := s.pipe.admissions(); fmt.Sprint(got) != fmt.Sprint([][]string{to}) {
		t.Errorf("admissions begun for %v, want one for %v", got, to)
	}
	if _, id, _ := strings.Cut(reply, "queued as "); id == "" {
		t.Errorf("reply %q", reply)
	} else {
		s.checkStored(t, id, []byte(msg))
	}
}

// TestSMTPConnectionCap: beyond MaxConnections a client gets 421 4.7.0 at
// once; the sessions in progress are unaffected, and once one ends a new
// connection is served.
func TestSMTPConnectionCap(t *testing.T) {
	s := startServer(t, func(o *Options) { o.MaxConnections = 1 })
	first := s.greeted(t)
	conn, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "421 4.7.0") {
		t.Fatalf("second connection got %q, %v", line, err)
	}
	if err := first.Noop(); err != nil {
		t.Fatal(err)
	}
	first.Quit()
	testkit.WaitFor(t, "a connection after the first closed", func() bool {
		c, err := smtp.Dial(s.addr)
		if err != nil {
			return false
		}
		defer c.Close()
		return c.Hello("client.test") == nil
	})
}

// TestShutdownHangsUpIdleSessions: at shutdown a session between
// transactions is told 421 and closed instead of holding the stop for the
// grace period; a new connection is refused.
func TestShutdownHangsUpIdleSessions(t *testing.T) {
	s := startServer(t)
	c := s.client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	err := c.Noop()
	if se, ok := err.(*smtp.SMTPError); !ok || se.Code != 421 {
		t.Fatalf("idle session after shutdown: %v, want 421", err)
	}
	if _, err := net.Dial("tcp", s.addr); err == nil {
		t.Error("the listener still accepts after shutdown")
	}
}
