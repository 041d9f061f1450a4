package pipeline

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// Every constructor must produce codes that agree: the SMTP class, the
// enhanced class and Temporary say the same thing, and the HTTP status is
// an error status.
func TestErrorCodesAgree(t *testing.T) {
	cases := map[string]struct {
		err      *Error
		smtp     int
		enhanced [3]int
		http     int
	}{
		"invalid":           {ErrInvalid.With("x"), 550, [3]int{5, 5, 2}, 400},
		"unknown field":     {ErrUnknownField, 550, [3]int{5, 5, 2}, 400},
		"bad address":       {ErrBadAddress.With("x"), 553, [3]int{5, 1, 3}, 400},
		"bad destination":   {ErrBadDestination.With("x"), 550, [3]int{5, 1, 2}, 400},
		"bad message":       {ErrBadMessage.With("x"), 550, [3]int{5, 6, 0}, 400},
		"unverified domain": {unverifiedDomain("a.test"), 550, [3]int{5, 7, 1}, 403},
		"all suppressed":    {ErrAllSuppressed, 550, [3]int{5, 1, 1}, 422},
		"too big":           {TooBig(10), 552, [3]int{5, 3, 4}, 413},
		"rate limited":      {ErrRateLimited.After(time.Second), 451, [3]int{4, 7, 1}, 429},
		"monthly limit":     {ErrMonthlyLimit, 452, [3]int{4, 5, 3}, 429},
		"account paused":    {ErrAccountPaused, 451, [3]int{4, 7, 1}, 403},
		"unavailable":       {ErrUnavailable.WithCause(errors.New("down")), 451, [3]int{4, 3, 0}, 503},
		"storage full":      {ErrStorageFull.WithCause(errors.New("oom")), 452, [3]int{4, 3, 1}, 503},
		"busy":              {ErrBusy, 451, [3]int{4, 3, 1}, 503},
		"account busy":      {ErrAccountBusy, 451, [3]int{4, 3, 1}, 503},
		"auth failed":       {ErrAuthFailed, 535, [3]int{5, 7, 8}, 401},
		"missing key":       {ErrMissingKey, 530, [3]int{5, 7, 0}, 401},
		"payload too large": {PayloadTooLarge(10), 552, [3]int{5, 3, 4}, 413},
		"forbidden":         {Forbidden("full"), 550, [3]int{5, 7, 1}, 403},
		"not found":         {NotFound("x"), 550, [3]int{5, 0, 0}, 404},
		"conflict":          {ErrConflict.With("x"), 550, [3]int{5, 0, 0}, 409},
		"idem reused":       {ErrIdempotencyMismatch, 550, [3]int{5, 5, 0}, 422},
		"idem in use":       {ErrIdempotencyInProgress, 451, [3]int{4, 3, 0}, 409},
		"key domain":        {keyDomain("a.test"), 550, [3]int{5, 7, 1}, 403},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			e := c.err
			if e.SMTPCode != c.smtp || e.Enhanced != c.enhanced || e.HTTPStatus != c.http {
				t.Errorf("got %d %v %d, want %d %v %d", e.SMTPCode, e.Enhanced, e.HTTPStatus, c.smtp, c.enhanced, c.http)
			}
			class := 5
			if e.Temporary {
				class = 4
			}
			if e.SMTPCode/100 != class || e.Enhanced[0] != class {
				t.Errorf("classes disagree: temporary=%v %d %v", e.Temporary, e.SMTPCode, e.Enhanced)
			}
			if e.Code == "" || e.Message == "" || e.HTTPStatus < 400 {
				t.Errorf("incomplete error %+v", e)
			}
		})
	}
}

func TestAsErrorTreatsUnknownAsUnavailable(t *testing.T) {
	e := AsError(errors.New("dial tcp: refused"))
	if e.SMTPCode != 451 || e.HTTPStatus != http.StatusServiceUnavailable {
		t.Fatalf("unknown error became %d / %d", e.SMTPCode, e.HTTPStatus)
	}
	wrapped := TooBig(1).WithCause(errors.New("cause"))
	if AsError(wrapped).SMTPCode != 552 || !errors.Is(wrapped, wrapped.Cause) {
		t.Fatal("WithCause lost the code or the cause")
	}
}

// errors.Is finds the sentinel an error was made from, through copies and
// wrapping, and never another sentinel that shares its code.
func TestErrorIsItsSentinel(t *testing.T) {
	wrapped := fmt.Errorf("sending: %w", ErrRateLimited.After(time.Second).WithCause(errors.New("gcra")))
	if !errors.Is(wrapped, ErrRateLimited) || errors.Is(wrapped, ErrUnavailable) {
		t.Error("a wrapped copy of ErrRateLimited is not recognised as it, or as another")
	}
	if errors.Is(ErrMissingKey, ErrAuthFailed) || errors.Is(ErrAuthFailed.With("x"), ErrMissingKey) {
		t.Error("two sentinels with one code are confused")
	}
	if !errors.Is(NotFound("email"), ErrNotFound) || NotFound("email").Message != "email not found" {
		t.Error("NotFound lost its sentinel or its message")
	}
	if ErrInvalid.With("x"); ErrInvalid.Message == "x" {
		t.Error("With changed the sentinel")
	}
}

// Every sentinel is its own kind, so errors.Is holds for the variable
// itself and for any copy of it.
func TestSentinelsAreThemselves(t *testing.T) {
	for _, e := range []*Error{ErrInvalid, ErrUnknownField, ErrBadAddress, ErrBadDestination, ErrBadMessage, ErrUnverifiedDomain, ErrAllSuppressed, ErrTooBig,
		ErrRateLimited, ErrMonthlyLimit, ErrAccountPaused, ErrUnavailable, ErrBusy, ErrAccountBusy, ErrStorageFull, ErrAuthFailed, ErrMissingKey, ErrPayloadTooLarge,
		ErrForbidden, ErrNotFound, ErrConflict, ErrIdempotencyMismatch, ErrIdempotencyInProgress, ErrKeyDomain} {
		if e.kind != e || !errors.Is(e.WithCause(errors.New("x")), e) {
			t.Errorf("%s: a copy is not recognised as its sentinel", e.Code)
		}
	}
}
