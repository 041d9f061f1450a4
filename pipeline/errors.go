package pipeline

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Error is the one error type that reaches a client. It carries everything
// each protocol needs so that smtpd and api translate it in one place each.
// The reply class (4xx or 5xx) is derived from Temporary, so the basic and
// the enhanced SMTP codes can never disagree.
type Error struct {
	Temporary  bool          // retry later: 4xx over SMTP
	SMTPCode   int           // basic reply code; must agree with Temporary
	Enhanced   [3]int        // RFC 3463 enhanced status code; Enhanced[0] follows Temporary
	HTTPStatus int           // status for the REST API
	Code       string        // stable machine-readable code for JSON errors
	Message    string        // safe to show a client: never hosts, keys or internal checks
	RetryAfter time.Duration // optional hint for 429/503
	Cause      error         // for logs only
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Cause)
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Cause }

// newError builds an Error whose SMTP class is derived from temporary.
// subject and detail are the second and third parts of the enhanced code.
func newError(temporary bool, basic, subject, detail, httpStatus int, code, message string) *Error {
	class := 5
	if temporary {
		class = 4
	}
	// basic is given as the last two digits (e.g. 50 for 550/450), so the
	// class digit always comes from temporary.
	return &Error{
		Temporary:  temporary,
		SMTPCode:   class*100 + basic,
		Enhanced:   [3]int{class, subject, detail},
		HTTPStatus: httpStatus,
		Code:       code,
		Message:    message,
	}
}

// WithCause returns a copy of e that records cause for logs.
func (e *Error) WithCause(cause error) *Error {
	c := *e
	c.Cause = cause
	return &c
}

// Constructors for every rejection the pipeline makes. Each is tested in
// errors_test.go for agreement between its codes.

// ErrInvalid reports a request that names something malformed.
func ErrInvalid(message string) *Error {
	return newError(false, 50, 5, 2, http.StatusBadRequest, "validation_error", message)
}

// ErrBadAddress reports a malformed mailbox.
func ErrBadAddress(message string) *Error {
	return newError(false, 53, 1, 3, http.StatusBadRequest, "invalid_address", message)
}

// ErrBadMessage reports a message whose header cannot be used (no From, unparsable).
func ErrBadMessage(message string) *Error {
	return newError(false, 50, 6, 0, http.StatusBadRequest, "invalid_message", message)
}

// ErrUnverifiedDomain reports a sender on a domain the account has not verified.
func ErrUnverifiedDomain(domain string) *Error {
	return newError(false, 50, 7, 1, http.StatusForbidden, "domain_not_verified",
		fmt.Sprintf("sender domain %q is not verified for this account; add and verify it under /v1/domains", domain))
}

// ErrAllSuppressed reports that no recipient is left after the suppression list.
func ErrAllSuppressed() *Error {
	return newError(false, 50, 1, 1, http.StatusUnprocessableEntity, "recipients_suppressed",
		"every recipient is on the suppression list")
}

// ErrTooBig reports a message over the size limit.
func ErrTooBig(limit int64) *Error {
	return newError(false, 52, 3, 4, http.StatusRequestEntityTooLarge, "message_too_large",
		fmt.Sprintf("message exceeds the limit of %d bytes", limit))
}

// ErrRateLimited reports that the account is over its sending rate.
func ErrRateLimited(retryAfter time.Duration) *Error {
	e := newError(true, 51, 7, 1, http.StatusTooManyRequests, "rate_limited",
		"sending rate limit exceeded; retry later")
	e.RetryAfter = retryAfter
	return e
}

// ErrUnavailable reports that storage is unreachable: nothing was accepted.
func ErrUnavailable(cause error) *Error {
	e := newError(true, 51, 3, 0, http.StatusServiceUnavailable, "service_unavailable",
		"temporarily unable to accept mail; try again later")
	e.RetryAfter = 5 * time.Second
	e.Cause = cause
	return e
}

// ErrBusy reports that a large message could not get its share of the
// process's message memory (smtp.data_memory_bytes) in time: too many are in
// progress; the client retries later.
func ErrBusy() *Error {
	e := newError(true, 51, 3, 1, http.StatusServiceUnavailable, "server_busy",
		"too many large messages in progress; try again later")
	e.RetryAfter = 5 * time.Second
	return e
}

// ErrStorageFull reports that storage refused the write for lack of space.
func ErrStorageFull(cause error) *Error {
	e := newError(true, 52, 3, 1, http.StatusServiceUnavailable, "insufficient_storage",
		"insufficient system storage; try again later")
	e.RetryAfter = 30 * time.Second
	e.Cause = cause
	return e
}

// ErrAuthFailed reports bad credentials.
func ErrAuthFailed() *Error {
	return newError(false, 35, 7, 8, http.StatusUnauthorized, "unauthorized",
		"invalid API key")
}

// ErrMissingKey reports a request without credentials.
func ErrMissingKey() *Error {
	return newError(false, 30, 7, 0, http.StatusUnauthorized, "unauthorized",
		"missing API key: send Authorization: Bearer <key>")
}

// ErrPayloadTooLarge reports a request body over the limit.
func ErrPayloadTooLarge(limit int64) *Error {
	return newError(false, 52, 3, 4, http.StatusRequestEntityTooLarge, "payload_too_large",
		fmt.Sprintf("request body exceeds the limit of %d bytes", limit))
}

// ErrForbidden reports a key that lacks the permission an operation needs.
func ErrForbidden(permission string) *Error {
	return newError(false, 50, 7, 1, http.StatusForbidden, "forbidden",
		fmt.Sprintf("this API key lacks the %q permission", permission))
}

// ErrNotFound reports an unknown resource.
func ErrNotFound(what string) *Error {
	return newError(false, 50, 0, 0, http.StatusNotFound, "not_found", what+" not found")
}

// ErrConflict reports an operation that the resource's state does not allow.
func ErrConflict(message string) *Error {
	return newError(false, 50, 0, 0, http.StatusConflict, "conflict", message)
}

// ErrIdempotencyMismatch reports an Idempotency-Key reused with a different request.
func ErrIdempotencyMismatch() *Error {
	return newError(false, 50, 5, 0, http.StatusUnprocessableEntity, "idempotency_key_reused",
		"this Idempotency-Key was used with a different request; use a new key for a new request")
}

// ErrIdempotencyInProgress reports that a request with the same
// Idempotency-Key is still running (or was interrupted moments ago).
func ErrIdempotencyInProgress() *Error {
	e := newError(true, 51, 3, 0, http.StatusConflict, "idempotency_key_in_use",
		"a request with this Idempotency-Key is still in progress; retry shortly")
	e.RetryAfter = time.Second
	return e
}

// ErrKeyDomain reports a key limited to one domain used to send from another.
func ErrKeyDomain(domain string) *Error {
	return newError(false, 50, 7, 1, http.StatusForbidden, "domain_not_allowed",
		fmt.Sprintf("this API key may not send from domain %q: it is limited to another domain", domain))
}

// AsError returns err as *Error. Any other error is treated as a storage
// failure: a relay that must never lose mail fails temporarily.
func AsError(err error) *Error {
	var pe *Error
	if errors.As(err, &pe) {
		return pe
	}
	return ErrUnavailable(err)
}
