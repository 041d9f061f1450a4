package smtpd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/pigeonpost/pigeonpost/internal/membudget"
	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline"
)

// The DATA tests: sizes around the read chunks and the memory budget, over
// fakePipeline, which keeps each message it queues.

// testMessage is a message of about size bytes whose header pigeonpost
// keeps as is, so that it is stored byte for byte.
func testMessage(size int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: size %d\r\nDate: Sun, 29 Nov 2026 10:00:00 +0000\r\nMessage-ID: <%d.%d@acme.test>\r\n\r\n",
		testFrom, testRcpt, size, size, time.Now().UnixNano())
	line := strings.Repeat("0123456789", 7) + "\r\n"
	for b.Len() < size {
		b.WriteString(line)
	}
	return b.Bytes()
}

// begin sends MAIL (with SIZE= when size > 0), RCPT and DATA.
func begin(t *testing.T, c *smtp.Client, size int64) *smtp.DataCommand {
	t.Helper()
	if err := c.Mail(testFrom, &smtp.MailOptions{Size: size}); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt(testRcpt, nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// finish writes the rest of the message and returns the queued id.
func finish(w *smtp.DataCommand, rest []byte) (string, error) {
	if _, err := w.Write(rest); err != nil {
		return "", err
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", err
	}
	_, id, ok := strings.Cut(resp.StatusText, "Ok: queued as ")
	if !ok {
		return "", fmt.Errorf("reply %q", resp.StatusText)
	}
	return id, nil
}

func send(t *testing.T, c *smtp.Client, msg []byte, size int64) (string, error) {
	t.Helper()
	return finish(begin(t, c, size), msg)
}

type sendResult struct {
	id  string
	err error
}

// TestDataSizes: messages around the first chunk, with and without SIZE=
// (right, too small, far too large), are stored exactly as sent, and no
// budget is left held.
func TestDataSizes(t *testing.T) {
	s := startServer(t)
	c := s.client(t)
	for _, tc := range []struct {
		size     int
		declared func(n int) int64
	}{
		{1000, nil},
		{firstChunk, nil},
		{firstChunk + 1, nil},
		{3*firstChunk + 17, nil},
		{300_000, func(n int) int64 { return int64(n) }},
		{300_000, func(n int) int64 { return int64(n / 3) }},
		{200_000, func(int) int64 { return maxBytes }},
		{maxBytes - 100, nil},
	} {
		msg := testMessage(tc.size)
		var declared int64
		if tc.declared != nil {
			declared = tc.declared(len(msg))
		}
		id, err := send(t, c, msg, declared)
		if err != nil {
			t.Fatalf("%d bytes, SIZE=%d: %v", len(msg), declared, err)
		}
		s.checkStored(t, id, msg)
		if n := s.budget.InUse(); n != 0 {
			t.Errorf("%d bytes, SIZE=%d: %d bytes of budget still held", len(msg), declared, n)
		}
	}
}

// TestLargeDataWaitsForBudget: while a large message holds the whole
// budget, a second one waits for it without failing and small messages go
// through; once the first is done, the second gets the budget.
func TestLargeDataWaitsForBudget(t *testing.T) {
	s := startServer(t)
	first, second := testMessage(400_000), testMessage(300_000)

	// The first client sends part of its message, then pauses mid-DATA
	// holding the budget (its largest need is the whole of it).
	w1 := begin(t, s.client(t), 0)
	if _, err := w1.Write(first[:200_000]); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "the first message to hold the budget", func() bool { return s.budget.InUse() == s.budget.Size() })

	r2 := make(chan sendResult, 1)
	c2 := s.client(t)
	w2 := begin(t, c2, 0)
	go func() {
		id, err := finish(w2, second)
		r2 <- sendResult{id, err}
	}()
	testkit.WaitFor(t, "the second message to wait for the budget", func() bool { return s.budget.Waiting() == 1 })

	small := testMessage(2000)
	id, err := send(t, s.client(t), small, 0)
	if err != nil {
		t.Fatalf("small message during the wait: %v", err)
	}
	s.checkStored(t, id, small)
	select {
	case r := <-r2:
		t.Fatalf("the second message finished while the first held the budget: %+v", r)
	default:
	}

	id1, err := finish(w1, first[200_000:])
	if err != nil {
		t.Fatalf("first: %v", err)
	}
	r := <-r2
	if r.err != nil {
		t.Fatalf("second: %v", r.err)
	}
	s.checkStored(t, id1, first)
	s.checkStored(t, r.id, second)
	if s.budget.InUse() != 0 || s.budget.Waiting() != 0 {
		t.Errorf("budget in use %d, waiting %d", s.budget.InUse(), s.budget.Waiting())
	}
}

// TestBudgetWaitEndsAtDataDeadline: a large message that cannot get the
// budget before the data deadline is answered 451 4.3.1, the rest of it is
// read and dropped, and the session goes on.
func TestBudgetWaitEndsAtDataDeadline(t *testing.T) {
	s := startServer(t, func(o *Options) { o.DataTimeout = 2 * time.Second })
	hold, err := s.budget.Acquire(context.Background(), s.budget.Size())
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Release()

	c := s.client(t)
	_, err = send(t, c, testMessage(300_000), 0)
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 451 || se.EnhancedCode != (smtp.EnhancedCode{4, 3, 1}) {
		t.Fatalf("got %v, want 451 4.3.1", err)
	}
	if s.budget.InUse() != s.budget.Size() || s.budget.Waiting() != 0 {
		t.Errorf("budget in use %d (want only the test's %d), waiting %d", s.budget.InUse(), s.budget.Size(), s.budget.Waiting())
	}
	// The same session still works: small messages do not need the budget.
	if err := c.Reset(); err != nil {
		t.Fatal(err)
	}
	small := testMessage(5000)
	id, err := send(t, c, small, 0)
	if err != nil {
		t.Fatalf("after the 451: %v", err)
	}
	s.checkStored(t, id, small)
}

// TestAccountShareRefusedAtOnce: a large message of an account whose
// messages in progress hold its share of the budget is answered 451 4.3.1
// at once, saying so, rather than made to wait (the data deadline here is
// long enough that a wait would hang the test); the session goes on.
func TestAccountShareRefusedAtOnce(t *testing.T) {
	budget := membudget.New(2*pipeline.MessageCost(maxBytes), pipeline.MessageCost(maxBytes), pipeline.MessageCost(maxBytes))
	s := startServer(t, func(o *Options) { o.Budget = budget })
	hold := budget.ReserveFor(fakeKey.AccountID)
	if err := hold.Grow(context.Background(), budget.Share()); err != nil {
		t.Fatal(err)
	}
	c := s.client(t)
	_, err := send(t, c, testMessage(300_000), 0)
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 451 || se.EnhancedCode != (smtp.EnhancedCode{4, 3, 1}) ||
		!strings.Contains(se.Message, "this account") {
		t.Fatalf("got %v, want 451 4.3.1 naming the account", err)
	}
	if err := c.Reset(); err != nil {
		t.Fatal(err)
	}
	hold.Release()
	msg := testMessage(300_000)
	id, err := send(t, c, msg, 0)
	if err != nil {
		t.Fatalf("once the share is free: %v", err)
	}
	s.checkStored(t, id, msg)
}
