package testkit

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/testkit/smtpsink"
)

// Sink is a recording SMTP server on 127.0.0.1:0 standing in for a
// destination MX or smarthost: the smtpsink server with its errors logged to
// the test. It accepts every sender and recipient unless told otherwise with
// Reply, and records each accepted message. The methods of
// smtpsink.Server not redefined here (Reply, Hold, Sessions, Messages,
// To, Stats, ...) are available as they are.
type Sink struct {
	*smtpsink.Server
	log *syncLogger
}

// Received is one message accepted by a Sink.
type Received = smtpsink.Received

// SinkOptions configures StartSink.
type SinkOptions struct {
	// TLS advertises STARTTLS with a self-signed certificate (for
	// "localhost" and 127.0.0.1) generated at start.
	TLS bool
	// BrokenTLS advertises STARTTLS, but every handshake fails. It wins
	// over TLS.
	BrokenTLS bool
	// MaxMessagesPerConnection answers MAIL with 421 4.7.0 once a
	// connection has had that many messages (a throttling provider); 0:
	// no limit.
	MaxMessagesPerConnection int
}

// StartSink starts a Sink on 127.0.0.1 with a kernel-chosen port. It is
// closed on t.Cleanup.
func StartSink(t testing.TB, opts SinkOptions) *Sink {
	t.Helper()
	log := &syncLogger{t: t}
	srv, err := smtpsink.Start(smtpsink.Options{TLS: opts.TLS, BrokenTLS: opts.BrokenTLS,
		MaxMessagesPerConnection: opts.MaxMessagesPerConnection, ErrorLog: log})
	if err != nil {
		t.Fatalf("testkit: sink: %v", err)
	}
	s := &Sink{Server: srv, log: log}
	t.Cleanup(s.Close)
	return s
}

// Wait blocks until at least n messages have been received and returns them
// (all of them, possibly more than n). If they do not arrive within timeout
// it calls t.Fatalf listing what did arrive.
func (s *Sink) Wait(t testing.TB, n int, timeout time.Duration) []Received {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	msgs, err := s.Server.Wait(ctx, func(m []Received) bool { return len(m) >= n })
	if err != nil {
		var b strings.Builder
		for i, m := range msgs {
			fmt.Fprintf(&b, "\n  #%d from=<%s> to=%v tls=%v %d bytes%s", i, m.From, m.To, m.TLS, len(m.Data), subjectOf(m.Data))
		}
		t.Fatalf("testkit: sink %s: waited %v for %d message(s), got %d:%s", s.Addr(), timeout, n, len(msgs), b.String())
	}
	return msgs
}

// Close stops the sink and drops its connections. It is safe to call more
// than once.
func (s *Sink) Close() {
	s.log.stop()
	s.Server.Close()
}

// subjectOf returns ` subject="..."` for a message with a Subject header.
func subjectOf(data []byte) string {
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" {
			break
		}
		if len(line) > 8 && strings.EqualFold(line[:8], "subject:") {
			return fmt.Sprintf(" subject=%q", strings.TrimSpace(line[8:]))
		}
	}
	return ""
}

// syncLogger sends go-smtp's error log to t.Logf until the sink is closed,
// so that no goroutine logs after the test has finished.
type syncLogger struct {
	mu      sync.Mutex
	t       testing.TB
	stopped bool
}

func (l *syncLogger) Printf(format string, v ...interface{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.stopped {
		l.t.Logf("testkit: sink: "+format, v...)
	}
}

func (l *syncLogger) Println(v ...interface{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.stopped {
		l.t.Log(append([]interface{}{"testkit: sink:"}, v...)...)
	}
}

func (l *syncLogger) stop() {
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
}
