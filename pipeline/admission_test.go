package pipeline

import (
	"context"
	"errors"
	"testing"
	"time"

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
