package deliver

import (
	"context"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
)

// Consecutive messages to one destination share a session; a kept session
// that died is noticed by RSET and replaced, and the message still goes out
// exactly once.
func TestSessionReuse(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		sink := testkit.StartSink(t, testkit.SinkOptions{TLS: useTLS})
		tr := &Transport{Hostname: "pigeon.test", RelayHost: sink.Addr(), Timeout: 30 * time.Second}
		defer tr.CloseIdle()
		ctx := context.Background()
		send := func(to string) {
			t.Helper()
			if err := tr.Deliver(ctx, Envelope{From: "a@acme.test", To: to, Data: crlf("From: a@acme.test\nSubject: x\n\nhi\n")}); err != nil {
				t.Fatal(err)
			}
		}
		send("one@example.test")
		sessions := sink.Sessions()
		send("two@example.test")
		send("three@example.test")
		if got := sink.Sessions(); got != sessions {
			t.Errorf("TLS %v: %d sessions after three messages, want the first one's %d", useTLS, got, sessions)
		}

		// Kill the kept connection under the pool.
		key := poolKey(sink.Addr(), true)
		if len(tr.pool.idle[key]) != 1 {
			t.Fatalf("TLS %v: %d idle sessions for %s", useTLS, len(tr.pool.idle[key]), key)
		}
		tr.pool.idle[key][0].conn.Close()
		send("four@example.test")
		if got := len(sink.Messages()); got != 4 {
			t.Errorf("TLS %v: sink received %d messages, want 4", useTLS, got)
		}
		if sink.Sessions() == sessions {
			t.Errorf("TLS %v: the dead session was not replaced", useTLS)
		}
	}
}
