package pipeline

import (
	"context"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// CheckAdmission answers what Submit would answer now for a message of
// key k from envelopeFrom to rcpts, before the message is built, charging
// and writing nothing: the sender (CheckSender), the account's pause
// (ErrAccountPaused), every recipient suppressed (ErrAllSuppressed) and,
// with limits, the rate and monthly limits (ErrRateLimited with its wait,
// ErrMonthlyLimit), in one round trip. Without limits it answers as
// Preview does, which does not reach the limits.
//
// A REST send asks it before it fetches attachment URLs, so that a send
// that is to be refused makes no outbound request (issue 18: a refused
// batch made 10,000 GETs). It is a look, not a reservation: Submit admits
// again and charges, and a send that passes here can still be refused
// there when other sends took the rate in between.
func (s *Service) CheckAdmission(ctx context.Context, k *store.Key, envelopeFrom string, rcpts []string, limits bool) error {
	if len(rcpts) == 0 {
		return ErrBadAddress.With("at least one recipient is required")
	}
	if err := s.CheckSender(ctx, k, envelopeFrom); err != nil {
		return err
	}
	for _, rcpt := range rcpts {
		if _, err := ParseAddress(rcpt); err != nil {
			return err
		}
	}
	mode := admitLook
	if limits {
		mode = admitCheck
	}
	suppressed, err := s.opt.RateLimit.run(ctx, s.rdb, k.AccountID, rcpts, s.opt.Now().UTC(), mode)
	if err != nil {
		return err
	}
	if !slices.Contains(suppressed, false) {
		return ErrAllSuppressed
	}
	return nil
}

// Admission is the admission of a message's recipients (the suppressions,
// the pause, the rate and the monthly charge: one fsynced round trip) begun
// before its body has arrived, so that the round trip runs while the body
// is read instead of after the final dot. smtpd begins one at DATA
// (BeginAdmission) and hands it to Submit in Submission.Admission; Submit
// then uses its result instead of admitting again, and answers exactly as
// without it: a refusal at DATA is not final (Submit admits again at the
// dot, and answers that), and checks of the message that come before the
// admission (prepare) still come first.
//
// Its charge stands only once the message is stored: whoever began it
// calls Release when done, which waits for the round trip and gives the
// charge back unless Submit stored the message (a message refused, cut
// off, replayed, or whose storing failed, is not charged). Release is
// safe on a nil *Admission, which is no admission at all.
type Admission struct {
	svc       *Service
	ctx       context.Context
	accountID string
	rcpts     []string
	now       time.Time

	done       chan struct{} // closed when the round trip is over
	suppressed []bool        // the admission's result, when err is nil
	err        error
	charged    charge // what it charged, when err is nil

	mu       sync.Mutex
	used     bool // Submit took its answer (result)
	kept     bool // and stored the message: the charge stands
	released bool
}

// BeginAdmission starts admitting (and charging) a message of key k to
// rcpts, on its own goroutine, under ctx; see Admission. The caller must
// call Release on it.
func (s *Service) BeginAdmission(ctx context.Context, k *store.Key, rcpts []string) *Admission {
	a := &Admission{svc: s, ctx: ctx, accountID: k.AccountID, rcpts: slices.Clone(rcpts),
		now: s.opt.Now().UTC(), done: make(chan struct{})}
	go a.run()
	return a
}

func (a *Admission) run() {
	defer close(a.done)
	defer func() {
		if v := recover(); v != nil {
			a.svc.opt.Logger.Error("panic admitting a message", "account", a.accountID, "panic", v, "stack", string(debug.Stack()))
			a.err = ErrUnavailable.With("internal error")
		}
	}()
	if len(a.rcpts) == 0 {
		a.err = ErrBadAddress.With("at least one recipient is required")
		return
	}
	l := a.svc.opt.RateLimit
	a.suppressed, a.err = l.admit(a.ctx, a.svc.rdb, a.accountID, a.rcpts, a.now, true)
	if a.err == nil {
		a.charged = l.chargeOf(a.accountID, a.now, a.suppressed)
	}
}

// admissionMaxAge is how old an admission may be at the final dot for
// Submit to use it: a body that took longer (up to smtp.data_timeout) is
// admitted again, so that a suppression made while it came in is seen.
const admissionMaxAge = 5 * time.Second

// result is the admission's answer for sub, once the round trip is over:
// ok is false when it does not apply to sub (another account, other
// recipients, a send that withholds), is older than admissionMaxAge, or
// refused or failed, and Submit must admit at the dot as it would
// without it.
func (a *Admission) result(ctx context.Context, sub Submission) (suppressed []bool, ok bool) {
	if a == nil || a.accountID != sub.Key.AccountID || !slices.Equal(a.rcpts, sub.Recipients) || sub.Withhold != "" ||
		a.svc.opt.Now().Sub(a.now) > admissionMaxAge {
		return nil, false
	}
	select {
	case <-a.done:
	case <-ctx.Done():
		return nil, false
	}
	if a.err != nil {
		return nil, false
	}
	a.mu.Lock()
	a.used = true
	a.mu.Unlock()
	return a.suppressed, true
}

// keep makes the charge stand, if Submit used it: the message is stored.
func (a *Admission) keep() {
	if a != nil {
		a.mu.Lock()
		a.kept = a.used
		a.mu.Unlock()
	}
}

// giveBackTimeout bounds the round trip that gives a charge back.
const giveBackTimeout = 10 * time.Second

// Release waits for the admission's round trip and, unless the message
// was stored (Submit), gives back what it charged. Later calls do nothing.
func (a *Admission) Release() {
	if a == nil {
		return
	}
	<-a.done
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.released {
		return
	}
	a.released = true
	if a.kept || a.err != nil || a.charged.sends == 0 {
		return
	}
	// The charge goes back even when the caller's context is over: it
	// was made, and the client will send the message again.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(a.ctx), giveBackTimeout)
	defer cancel()
	if err := a.svc.opt.RateLimit.giveBack(ctx, a.svc.rdb, a.charged, a.svc.opt.Now().UTC()); err != nil {
		a.svc.opt.Logger.Warn("giving back the charge of a message not stored failed", "account", a.accountID, "err", err)
	}
}
