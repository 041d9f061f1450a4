package main

import (
	"context"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/testkit/smtpsink"
)

// sink is the downstream SMTP server: the MX of the recipient domain. It
// accepts everything, offers STARTTLS, and keeps each message in memory and
// as a file in its directory (NNN-recipient.eml) for a person to look at.
//
// The rehearsal server is a sink that is also a stand-in submission server:
// it takes any API key (after STARTTLS, or on its implicit-TLS port), so
// that each client's own message can be compared with what pigeonpost
// delivered.
type sink = smtpsink.Server

type received = smtpsink.Received

func startSink(dir string, rehearsal bool) (*sink, error) {
	opts := smtpsink.Options{Domain: "mx.example.test", TLS: true, SMTPUTF8: true, Dir: dir}
	if rehearsal {
		opts.ImplicitTLS = true
		opts.Auth = func(string, string) bool { return true }
		opts.AuthLogin = true
	}
	return smtpsink.Start(opts)
}

// waitTo waits up to timeout for a message to rcpt and returns the
// messages to rcpt.
func waitTo(ctx context.Context, s *sink, rcpt string, timeout time.Duration) []received {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	msgs, _ := s.Wait(ctx, func(m []received) bool { return len(smtpsink.To(m, rcpt)) > 0 })
	return smtpsink.To(msgs, rcpt)
}
