package deliver

import (
	"bufio"
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
)

// TestDeliverDestinationStalls (catalogue F8): a destination that accepts
// the connection and never greets, one that stalls after 354, and one that
// hangs up after the final dot without a reply each end the attempt with a
// temporary error at the transport's timeout (or at once), so the message
// is retried, never bounced and never counted delivered.
func TestDeliverDestinationStalls(t *testing.T) {
	silent := func(t *testing.T) string { // accepts, reads, never writes
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() { _, _ = io.Copy(io.Discard, c); c.Close() }()
			}
		}()
		return ln.Addr().String()
	}
	hangUpAtDot := func(t *testing.T) string { // a full session that closes instead of answering the data
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			r := bufio.NewReader(c)
			_, _ = io.WriteString(c, "220 mx.test\r\n")
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				switch {
				case len(line) >= 4 && line[:4] == "EHLO":
					_, _ = io.WriteString(c, "250 mx.test\r\n")
				case len(line) >= 4 && line[:4] == "DATA":
					_, _ = io.WriteString(c, "354 go on\r\n")
				case line == ".\r\n":
					return // hang up: no reply to the data
				case len(line) >= 4 && (line[:4] == "MAIL" || line[:4] == "RCPT"):
					_, _ = io.WriteString(c, "250 ok\r\n")
				}
			}
		}()
		return ln.Addr().String()
	}
	for _, c := range []struct {
		name string
		addr func(t *testing.T) string
	}{
		{"never greets", silent},
		{"stalls after 354", func(t *testing.T) string {
			sink := testkit.StartSink(t, testkit.SinkOptions{})
			_, release := sink.Hold("data")
			t.Cleanup(release)
			return sink.Addr()
		}},
		{"hangs up after the final dot", hangUpAtDot},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr := &Transport{Hostname: "pigeon.test", RelayHost: c.addr(t), Timeout: 300 * time.Millisecond}
			err := tr.Deliver(context.Background(), testEnvelope())
			if e := asError(t, err); !e.Temporary {
				t.Fatalf("error %+v, want temporary", e)
			}
		})
	}
}
