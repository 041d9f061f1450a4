package pipeline

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/clock"
	"github.com/pigeonpost/pigeonpost/internal/failpoint"
	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
	"github.com/pigeonpost/pigeonpost/tracking"
)

// CheckAdmission answers as Submit's admission would, and charges
// nothing: however often it is asked, the burst is still there for the
// sends; once the sends took it, it answers the rate limit, the monthly
// limit and the pause as Submit does.
func TestCheckAdmission(t *testing.T) {
	ctx := context.Background()
	rdb := testkit.StartRedis(t).Client(t)
	st := store.New(rdb, time.Now)
	svc := New(st, tracking.NewSigner([]byte("secret")), Options{Hostname: "gw.test", PublicURL: "https://t.test",
		RateLimit: RateLimit{PerSecond: 0.001, Burst: 3}})
	k := testKey(t, st, "acme", "sp_test_pipelineunittestkey0000001")
	to := []string{"a@example.test"}
	send := func() error {
		_, err := svc.Submit(ctx, Submission{Key: k, Source: "api", EnvelopeFrom: "hello@acme.test", Recipients: to,
			Message: []byte("From: hello@acme.test\r\nTo: a@example.test\r\nSubject: s\r\n\r\nbody\r\n")})
		return err
	}

	for range 10 {
		if err := svc.CheckAdmission(ctx, k, "hello@acme.test", to, true); err != nil {
			t.Fatalf("within the limits: %v", err)
		}
	}
	for i := range 3 {
		if err := send(); err != nil {
			t.Fatalf("send %d of the burst after the checks: %v", i, err)
		}
	}
	err := svc.CheckAdmission(ctx, k, "hello@acme.test", to, true)
	if !errors.Is(err, ErrRateLimited) || AsError(err).RetryAfter <= 0 {
		t.Fatalf("over the rate: %v", err)
	}
	if err := send(); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("Submit over the rate: %v", err)
	}
	if err := svc.CheckAdmission(ctx, k, "hello@acme.test", to, false); err != nil {
		t.Errorf("without limits (a preview) over the rate: %v", err)
	}

	if err := st.Suppress(ctx, k.AccountID, "gone@example.test", "bounce"); err != nil {
		t.Fatal(err)
	}
	if err := svc.CheckAdmission(ctx, k, "hello@acme.test", []string{"gone@example.test"}, true); !errors.Is(err, ErrAllSuppressed) {
		t.Errorf("every recipient suppressed: %v", err)
	}
	if err := svc.CheckAdmission(ctx, k, "hello@acme.test", nil, true); !errors.Is(err, ErrBadAddress) {
		t.Errorf("no recipient: %v", err)
	}

	m := testKey(t, st, "monthly", "sp_test_pipelineunittestkey0000002")
	if err := st.SetMonthlyLimit(ctx, m.AccountID, 1); err != nil {
		t.Fatal(err)
	}
	if err := svc.CheckAdmission(ctx, m, "hello@acme.test", []string{"a@example.test", "b@example.test"}, true); !errors.Is(err, ErrMonthlyLimit) {
		t.Errorf("over the monthly limit: %v", err)
	}
	if err := svc.CheckAdmission(ctx, m, "hello@acme.test", to, true); err != nil {
		t.Errorf("within the monthly limit: %v", err)
	}
	if used, _, err := st.Usage(ctx, m.AccountID, Month(time.Now())); err != nil || used != 0 {
		t.Errorf("the checks charged the month: %d %v", used, err)
	}

	if _, err := st.PauseAccount(ctx, m.AccountID, store.Pause{At: time.Now(), Reason: "manual"}); err != nil {
		t.Fatal(err)
	}
	for _, limits := range []bool{true, false} {
		if err := svc.CheckAdmission(ctx, m, "hello@acme.test", to, limits); !errors.Is(err, ErrAccountPaused) {
			t.Errorf("paused (limits %v): %v", limits, err)
		}
	}
}

// An admission begun at DATA (BeginAdmission) charges only a message that
// is then stored: one refused after DATA began (a bad message, a body cut
// off, a replay, a failed write) gives its charge back, so that the burst
// is taken by the stored messages alone. Its refusals are not final: the
// answer is the one at the final dot, in the same order as without it.
func TestAdmissionBegunAtData(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewFake(time.Date(2026, 11, 15, 12, 0, 0, 0, time.UTC)) // hours from a month's end
	rdb := testkit.StartRedis(t).Client(t)
	st := store.New(rdb, clk.Now)
	svc := New(st, tracking.NewSigner([]byte("secret")), Options{Hostname: "gw.test", PublicURL: "https://t.test",
		RateLimit: RateLimit{PerSecond: 0.001, Burst: 3}, Now: clk.Now}) // one send per 1000 s, 3 at once
	k := testKey(t, st, "acme", "sp_test_pipelineunittestkey0000003")
	to := []string{"a@example.test"}
	const (
		good  = "From: hello@acme.test\r\nTo: a@example.test\r\nSubject: s\r\n\r\nbody\r\n"
		bad   = "To: a@example.test\r\nSubject: no From\r\n\r\nbody\r\n"
		keyed = "From: hello@acme.test\r\nTo: a@example.test\r\nMessage-ID: <once@acme.test>\r\nSubject: s\r\n\r\nbody\r\n"
	)
	submit := func(sctx context.Context, msg string, adm *Admission) (*Receipt, error) {
		return svc.Submit(sctx, Submission{Key: k, Source: "smtp", EnvelopeFrom: "hello@acme.test", Recipients: to,
			Message: []byte(msg), Admission: adm})
	}
	send := func(msg string) (*Receipt, error) {
		adm := svc.BeginAdmission(ctx, k, to)
		defer adm.Release()
		return submit(ctx, msg, adm)
	}
	wantUsed := func(step string, want int64) {
		t.Helper()
		if used, _, err := st.Usage(ctx, k.AccountID, Month(clk.Now())); err != nil || used != want {
			t.Fatalf("%s: %d sends charged to the month (%v), want %d", step, used, err, want)
		}
	}

	if _, err := send(good); err != nil {
		t.Fatalf("first message: %v", err)
	}
	wantUsed("stored", 1)
	if _, err := send(bad); !errors.Is(err, ErrBadMessage) {
		t.Fatalf("message without From: %v", err)
	}
	wantUsed("refused at the dot", 1)
	svc.BeginAdmission(ctx, k, to).Release() // the body never came (too big, cut off, RSET)
	wantUsed("no body", 1)

	sctx, cancel := context.WithCancel(ctx)
	disarm := failpoint.Arm(failpoint.BeforeCommit, func(string) { cancel() })
	adm := svc.BeginAdmission(ctx, k, to)
	_, err := submit(sctx, good, adm)
	disarm()
	adm.Release()
	if err == nil {
		t.Fatal("Submit succeeded though its write was cut off")
	}
	wantUsed("write failed", 1)

	if _, err := send(keyed); err != nil {
		t.Fatalf("message with its Message-ID: %v", err)
	}
	if r, err := send(keyed); err != nil || !r.Replayed {
		t.Fatalf("the same message again: %+v, %v; want the first receipt", r, err)
	}
	wantUsed("replayed", 2)

	// Two stored so far: the third of the burst is there only if every
	// refused message gave its charge back.
	if _, err := send(good); err != nil {
		t.Fatalf("third of the burst: %v", err)
	}
	wantUsed("burst taken", 3)

	// Over the rate: the same answer, at the dot, as without an admission;
	// a message that prepare refuses is still refused for that first.
	_, errWithout := submit(ctx, good, nil)
	_, errWith := send(good)
	if !errors.Is(errWith, ErrRateLimited) || AsError(errWith).RetryAfter != AsError(errWithout).RetryAfter {
		t.Fatalf("over the rate: %v (retry after %v), without an admission %v (retry after %v)",
			errWith, AsError(errWith).RetryAfter, errWithout, AsError(errWithout).RetryAfter)
	}
	if _, err := send(bad); !errors.Is(err, ErrBadMessage) {
		t.Fatalf("bad message over the rate: %v, want the message's own error first", err)
	}

	// Refused at DATA, admitted at the dot: the dot's answer counts.
	adm = svc.BeginAdmission(ctx, k, to)
	clk.Advance(1000 * time.Second)
	_, err = submit(ctx, good, adm)
	adm.Release()
	if err != nil {
		t.Fatalf("rate free again by the final dot: %v", err)
	}
	wantUsed("admitted at the dot", 4)

	// An admission for other recipients is not used, and what it charged
	// (here the whole burst) goes back before the message is charged.
	clk.Advance(3000 * time.Second) // the whole burst back
	adm = svc.BeginAdmission(ctx, k, []string{"b@example.test", "c@example.test", "d@example.test"})
	<-adm.done // its round trip is over before the body is: the usual case
	_, err = submit(ctx, good, adm)
	adm.Release()
	if err != nil {
		t.Fatalf("admission for other recipients: %v", err)
	}
	wantUsed("other recipients", 5)

	// A body that took longer than admissionMaxAge is admitted again at
	// the dot: a suppression made while it came in is seen, and the early
	// charge goes back.
	clk.Advance(3000 * time.Second)
	adm = svc.BeginAdmission(ctx, k, to)
	if err := st.Suppress(ctx, k.AccountID, to[0], "bounce"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(admissionMaxAge + time.Second)
	_, err = submit(ctx, good, adm)
	adm.Release()
	if !errors.Is(err, ErrAllSuppressed) {
		t.Fatalf("recipient suppressed during a long transfer: %v", err)
	}
	wantUsed("suppressed during the transfer", 5)
}
