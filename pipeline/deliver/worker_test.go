package deliver

import (
	"context"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-smtp"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
)

func TestHardBounce(t *testing.T) {
	cases := []struct {
		err  Error
		want bool
	}{
		{Error{Enhanced: [3]int{5, 1, 1}}, true},                   // bad mailbox
		{Error{Enhanced: [3]int{5, 1, 10}}, true},                  // null MX
		{Error{Enhanced: [3]int{5, 1, 7}}, false},                  // bad sender: not the recipient's fault
		{Error{Enhanced: [3]int{5, 7, 1}}, false},                  // policy
		{Error{Temporary: true, Enhanced: [3]int{4, 1, 1}}, false}, // temporary
	}
	for _, c := range cases {
		if got := hardBounce(&c.err); got != c.want {
			t.Errorf("%v: %v, want %v", c.err.Enhanced, got, c.want)
		}
	}
}

func TestBackoffDoublesWithJitterUpToMax(t *testing.T) {
	w := &Worker{RetryInitial: time.Second, RetryMax: 10 * time.Second}
	for attempts, base := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second, 5: 10 * time.Second, 30: 10 * time.Second} {
		for range 20 {
			d := w.backoff(attempts)
			if d < base-base/10 || d > base+base/10 {
				t.Fatalf("attempt %d: %v outside %v ±10%%", attempts, d, base)
			}
		}
	}
}

// TestDeliverWithReply: a delivery names the host that took it and its
// reply to the end of DATA, over a new session and over a kept one; a
// refusal's *Error has the host and the reply.
func TestDeliverWithReply(t *testing.T) {
	sink := testkit.StartSink(t, testkit.SinkOptions{})
	tr := testTransport(sink)
	defer tr.CloseIdle()
	for i := range 2 { // the second goes over the pooled session
		got, err := tr.DeliverWithReply(context.Background(), testEnvelope())
		if err != nil {
			t.Fatalf("#%d: %v", i, err)
		}
		if want := (Delivered{Host: "127.0.0.1", Reply: "250 2.0.0 OK: queued"}); got != want {
			t.Errorf("#%d: %+v, want %+v", i, got, want)
		}
	}
	sink.Reply("rcpt", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}, 1)
	got, err := tr.DeliverWithReply(context.Background(), testEnvelope())
	e := asError(t, err)
	if got != (Delivered{}) || e.Host != "127.0.0.1" || e.Reply() != "550 5.1.1 no such user" {
		t.Errorf("refused: %+v, host %q, reply %q", got, e.Host, e.Reply())
	}
}

func TestAttemptData(t *testing.T) {
	long := "250 2.0.0 " + strings.Repeat("é", 200) // two bytes a rune: cut inside one
	d := attemptData("mx.example.test", long+"\r\n\r\nqueued", "")
	if d["mx"] != "mx.example.test" || len(d) != 2 {
		t.Errorf("data %v", d)
	}
	r := d["response"]
	if len(r) > maxEventReply || len(r) < maxEventReply-1 || !utf8.ValidString(r) || strings.ContainsAny(r, "\r\n") || !strings.HasPrefix(r, "250 2.0.0 éé") {
		t.Errorf("response %q (%d bytes)", r, len(r))
	}
	if d := attemptData("", "", "connection refused"); len(d) != 1 || d["reason"] != "connection refused" {
		t.Errorf("local failure: %v", d)
	}
	if d := attemptData("", "", ""); d != nil {
		t.Errorf("nothing known: %v", d)
	}
}
