package pipeline

import (
	"errors"
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
		"invalid":           {ErrInvalid("x"), 550, [3]int{5, 5, 2}, 400},
		"bad address":       {ErrBadAddress("x"), 553, [3]int{5, 1, 3}, 400},
		"bad message":       {ErrBadMessage("x"), 550, [3]int{5, 6, 0}, 400},
		"unverified domain": {ErrUnverifiedDomain("a.test"), 550, [3]int{5, 7, 1}, 403},
		"all suppressed":    {ErrAllSuppressed(), 550, [3]int{5, 1, 1}, 422},
		"too big":           {ErrTooBig(10), 552, [3]int{5, 3, 4}, 413},
		"rate limited":      {ErrRateLimited(time.Second), 451, [3]int{4, 7, 1}, 429},
		"unavailable":       {ErrUnavailable(errors.New("down")), 451, [3]int{4, 3, 0}, 503},
		"storage full":      {ErrStorageFull(errors.New("oom")), 452, [3]int{4, 3, 1}, 503},
		"busy":              {ErrBusy(), 451, [3]int{4, 3, 1}, 503},
		"auth failed":       {ErrAuthFailed(), 535, [3]int{5, 7, 8}, 401},
		"missing key":       {ErrMissingKey(), 530, [3]int{5, 7, 0}, 401},
		"payload too large": {ErrPayloadTooLarge(10), 552, [3]int{5, 3, 4}, 413},
		"forbidden":         {ErrForbidden("full"), 550, [3]int{5, 7, 1}, 403},
		"not found":         {ErrNotFound("x"), 550, [3]int{5, 0, 0}, 404},
		"conflict":          {ErrConflict("x"), 550, [3]int{5, 0, 0}, 409},
		"idem reused":       {ErrIdempotencyMismatch(), 550, [3]int{5, 5, 0}, 422},
		"idem in use":       {ErrIdempotencyInProgress(), 451, [3]int{4, 3, 0}, 409},
		"key domain":        {ErrKeyDomain("a.test"), 550, [3]int{5, 7, 1}, 403},
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
	wrapped := ErrTooBig(1).WithCause(errors.New("cause"))
	if AsError(wrapped).SMTPCode != 552 || !errors.Is(wrapped, wrapped.Cause) {
		t.Fatal("WithCause lost the code or the cause")
	}
}
