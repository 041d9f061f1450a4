// Package reputation guards a sender's reputation: it pauses an account's
// sending when the mail it sends bounces or draws complaints too often,
// and lifts the pause on an operator's word.
//
// The rates are measured over the account's sends of the last window
// (reputation.window, whole hours): bounced over delivered plus bounced,
// complained over delivered, once the window holds at least the minimum
// volume. The counts are kept per hour (store.ReputationKey) and move in
// the MULTI that records each delivered, bounced or complained event, so
// they cost delivery nothing; the rates are computed only when a bounce or
// a complaint is recorded, the only events that can raise them.
//
// A paused account's submissions are refused in the admit script (REST 403
// account_paused, SMTP 451 4.7.1) and its queued mail is held back from
// delivery (store.Hold) until the pause is lifted, when it goes back on
// the queue. Pausing and resuming are account events (account.paused,
// account.resumed): listed by GET /v1/events and sent to webhooks.
package reputation

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/ttlcache"
	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// Options are the guard's limits (config reputation.*).
type Options struct {
	AutoPause        bool
	Window           time.Duration // whole hours
	MinVolume        int64
	MaxBounceRate    float64
	MaxComplaintRate float64
	Now              func() time.Time
	Logger           *slog.Logger
}

// Guard pauses and resumes accounts. It is safe for concurrent use.
type Guard struct {
	opt    Options
	store  *store.Store
	paused *ttlcache.Cache[bool]
}

// pausedTTL is how long a delivery worker trusts what it read of an
// account's pause: a pause takes effect on queued mail within it.
const pausedTTL = 2 * time.Second

// holdBatch is how many held emails one release moves at a time.
const holdBatch = 1000

// The reasons of a pause.
const (
	ReasonBounceRate    = "bounce_rate"
	ReasonComplaintRate = "complaint_rate"
	ReasonManual        = "manual"
)

// New returns the guard over st.
func New(st *store.Store, opt Options) *Guard {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	return &Guard{opt: opt, store: st, paused: ttlcache.New[bool](pausedTTL)}
}

func (g *Guard) hours() int { return int(g.opt.Window / time.Hour) }

// Window is an account's figures over the window, with their rates.
type Window struct {
	Hours         int
	Figures       store.Figures
	Sends         int64   // delivered + bounced
	BounceRate    float64 // bounced / sends; 0 without sends
	ComplaintRate float64 // complained / delivered; 0 without deliveries
}

// NewWindow returns the window of hours hours whose counts are f.
func NewWindow(f store.Figures, hours int) Window {
	w := Window{Hours: hours, Figures: f, Sends: f.Delivered + f.Bounced}
	if w.Sends > 0 {
		w.BounceRate = float64(f.Bounced) / float64(w.Sends)
	}
	if f.Delivered > 0 {
		w.ComplaintRate = float64(f.Complained) / float64(f.Delivered)
	}
	return w
}

// over returns the reason w passes a limit for, "" when it passes none or
// holds too few sends to tell.
func (g *Guard) over(w Window) string {
	switch {
	case w.Sends < g.opt.MinVolume:
		return ""
	case w.BounceRate > g.opt.MaxBounceRate:
		return ReasonBounceRate
	case w.ComplaintRate > g.opt.MaxComplaintRate:
		return ReasonComplaintRate
	}
	return ""
}

// Observe re-computes the account's rates after a bounce or a complaint
// was recorded for it and pauses its sending when one passes its limit
// (reputation.auto_pause). The deliver worker and the feedback intake call
// it.
func (g *Guard) Observe(ctx context.Context, accountID string) error {
	if !g.opt.AutoPause {
		return nil
	}
	now := g.opt.Now().UTC()
	f, err := g.store.ReputationWindow(ctx, accountID, now, g.hours())
	if err != nil {
		return err
	}
	w := NewWindow(f, g.hours())
	reason := g.over(w)
	if reason == "" {
		return nil
	}
	paused, err := g.pause(ctx, accountID, store.Pause{At: now, Reason: reason, Figures: f, Hours: w.Hours}, w)
	if paused {
		g.opt.Logger.Warn("sending paused for an account: its rate passed the limit", "account", accountID,
			"reason", reason, "bounce_rate", w.BounceRate, "complaint_rate", w.ComplaintRate,
			"sends", w.Sends, "bounced", f.Bounced, "complained", f.Complained)
	}
	return err
}

// pause pauses the account unless it is paused already, and records the
// account.paused event when it did.
func (g *Guard) pause(ctx context.Context, accountID string, p store.Pause, w Window) (bool, error) {
	done, err := g.store.PauseAccount(ctx, accountID, p)
	if err != nil || !done {
		return false, err
	}
	g.paused.Drop(accountID)
	data := map[string]string{"reason": p.Reason}
	if p.Reason != ReasonManual {
		data["windowHours"] = strconv.Itoa(w.Hours)
		data["sends"] = strconv.FormatInt(w.Sends, 10)
		data["bounced"] = strconv.FormatInt(w.Figures.Bounced, 10)
		data["complained"] = strconv.FormatInt(w.Figures.Complained, 10)
		data["bounceRate"] = rate(w.BounceRate)
		data["complaintRate"] = rate(w.ComplaintRate)
	}
	return true, g.store.RecordAccountEvent(ctx, &store.Event{Type: store.EventAccountPaused, Timestamp: p.At,
		AccountID: accountID, Data: data})
}

func rate(r float64) string { return strconv.FormatFloat(r, 'f', 4, 64) }

// Pause pauses the account's sending by an operator's decision; it
// reports whether it was not paused already.
func (g *Guard) Pause(ctx context.Context, accountID string) (bool, error) {
	paused, err := g.pause(ctx, accountID, store.Pause{At: g.opt.Now().UTC(), Reason: ReasonManual}, Window{})
	if err != nil {
		return false, pipeline.StorageError(err)
	}
	return paused, nil
}

// Resume lifts the account's pause: the counts of the window that caused
// it are forgotten (they would pause it again at once), its held mail goes
// back on the delivery queue, and the account.resumed event is recorded.
// It reports whether the account was paused.
func (g *Guard) Resume(ctx context.Context, accountID string) (bool, error) {
	now := g.opt.Now().UTC()
	was, err := g.store.ResumeAccount(ctx, accountID, now, g.hours())
	if err != nil {
		return false, pipeline.StorageError(err)
	}
	g.paused.Drop(accountID)
	if !was {
		return false, nil
	}
	if err := g.store.RecordAccountEvent(ctx, &store.Event{Type: store.EventAccountResumed, Timestamp: now,
		AccountID: accountID, Data: map[string]string{}}); err != nil {
		return true, pipeline.StorageError(err)
	}
	if _, err := g.store.ReleaseHeld(ctx, accountID, holdBatch); err != nil {
		// The workers release it too (ReleaseResumed).
		g.opt.Logger.Warn("releasing an account's held mail failed; a delivery worker will", "account", accountID, "err", err)
	}
	return true, nil
}

// Paused reports whether the account's sending is paused, as read at most
// pausedTTL ago: the delivery worker asks before each attempt.
func (g *Guard) Paused(ctx context.Context, accountID string) (bool, error) {
	return g.paused.Lookup(accountID, g.opt.Now(), func() (bool, error) {
		p, err := g.store.AccountPause(ctx, accountID)
		return p != nil, err
	})
}

// ReleaseResumed puts back on the delivery queue the held mail of every
// account that is no longer paused: mail a worker held while the account
// was being resumed (it read the pause a moment before). Delivery workers
// call it periodically.
func (g *Guard) ReleaseResumed(ctx context.Context) error {
	accounts, err := g.store.HeldAccounts(ctx)
	if err != nil {
		return err
	}
	for _, id := range accounts {
		p, err := g.store.AccountPause(ctx, id)
		if err != nil {
			return err
		}
		if p != nil {
			continue
		}
		if _, err := g.store.ReleaseHeld(ctx, id, holdBatch); err != nil {
			return err
		}
	}
	return nil
}

// State is an account's reputation: its pause, if any, its figures over
// the window now, the limits and the mail held back.
type State struct {
	Pause  *store.Pause
	Window Window
	Held   int64
	Limits Options
}

// State returns the account's reputation.
func (g *Guard) State(ctx context.Context, accountID string) (*State, error) {
	now := g.opt.Now().UTC()
	p, err := g.store.AccountPause(ctx, accountID)
	if err != nil {
		return nil, pipeline.StorageError(err)
	}
	f, err := g.store.ReputationWindow(ctx, accountID, now, g.hours())
	if err != nil {
		return nil, pipeline.StorageError(err)
	}
	held, err := g.store.HeldCount(ctx, accountID)
	if err != nil {
		return nil, pipeline.StorageError(err)
	}
	return &State{Pause: p, Window: NewWindow(f, g.hours()), Held: held, Limits: g.opt}, nil
}

// String describes a pause for logs and the CLI.
func (w Window) String() string {
	return fmt.Sprintf("%d sends in %dh: %d bounced (%.2f%%), %d complained (%.2f%%)", w.Sends, w.Hours,
		w.Figures.Bounced, 100*w.BounceRate, w.Figures.Complained, 100*w.ComplaintRate)
}
