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
//
// Every Error is one of the sentinels below, or a copy of one made by With,
// Withf, After or WithCause: errors.Is(err, ErrRateLimited) holds for each
// copy, whatever its message.
type Error struct {
	Temporary  bool          // retry later: 4xx over SMTP
	SMTPCode   int           // basic reply code; must agree with Temporary
	Enhanced   [3]int        // RFC 3463 enhanced status code; Enhanced[0] follows Temporary
	HTTPStatus int           // status for the REST API
	Code       Code          // stable machine-readable code for JSON errors
	Message    string        // safe to show a client: never hosts, keys or internal checks
	RetryAfter time.Duration // optional hint for 429/503
	Cause      error         // for logs only

	kind *Error // the sentinel this is a copy of
}

// Code is the stable machine-readable code of an Error, the "code" of a
// JSON error. Two sentinels may share one (ErrMissingKey and ErrAuthFailed
// are both "unauthorized"); errors.Is tells them apart.
type Code string

// The codes a client can be given.
const (
	CodeValidation           Code = "validation_error"
	CodeInvalidRequest       Code = "invalid_request"
	CodeInvalidAddress       Code = "invalid_address"
	CodeInvalidMessage       Code = "invalid_message"
	CodeDomainNotVerified    Code = "domain_not_verified"
	CodeRecipientsSuppressed Code = "recipients_suppressed"
	CodeMessageTooLarge      Code = "message_too_large"
	CodeRateLimited          Code = "rate_limited"
	CodeMonthlyLimit         Code = "monthly_limit_reached"
	CodeAccountPaused        Code = "account_paused"
	CodeUnavailable          Code = "service_unavailable"
	CodeServerBusy           Code = "server_busy"
	CodeStorageFull          Code = "insufficient_storage"
	CodeUnauthorized         Code = "unauthorized"
	CodeAuthLocked           Code = "too_many_auth_failures"
	CodePayloadTooLarge      Code = "payload_too_large"
	CodeForbidden            Code = "forbidden"
	CodeNotFound             Code = "not_found"
	CodeConflict             Code = "conflict"
	CodeIdempotencyReused    Code = "idempotency_key_reused"
	CodeIdempotencyInUse     Code = "idempotency_key_in_use"
	CodeDomainNotAllowed     Code = "domain_not_allowed"
)

func (e *Error) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Cause)
	}
	return string(e.Code) + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Cause }

// Is reports whether target is the sentinel e was made from.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && e.kind != nil && t == e.kind
}

// sentinel builds an Error whose SMTP class is derived from temporary.
// subject and detail are the second and third parts of the enhanced code;
// message is the default text, which With replaces.
func sentinel(temporary bool, basic, subject, detail, httpStatus int, code Code, message string) *Error {
	class := 5
	if temporary {
		class = 4
	}
	// basic is given as the last two digits (e.g. 50 for 550/450), so the
	// class digit always comes from temporary.
	e := &Error{
		Temporary:  temporary,
		SMTPCode:   class*100 + basic,
		Enhanced:   [3]int{class, subject, detail},
		HTTPStatus: httpStatus,
		Code:       code,
		Message:    message,
	}
	e.kind = e
	return e
}

// retrying sets the RetryAfter of a sentinel as it is built; After makes
// copies, which would not be the sentinel.
func retrying(e *Error, d time.Duration) *Error {
	e.RetryAfter = d
	return e
}

// With returns a copy of e that says message.
func (e *Error) With(message string) *Error {
	c := *e
	c.Message = message
	return &c
}

// Withf returns a copy of e whose message is formatted.
func (e *Error) Withf(format string, args ...any) *Error {
	return e.With(fmt.Sprintf(format, args...))
}

// After returns a copy of e that asks the client to retry after d.
func (e *Error) After(d time.Duration) *Error {
	c := *e
	c.RetryAfter = d
	return &c
}

// WithCause returns a copy of e that records cause for logs.
func (e *Error) WithCause(cause error) *Error {
	c := *e
	c.Cause = cause
	return &c
}

// The rejections the pipeline makes. Each is tested in errors_test.go for
// agreement between its codes.
var (
	// ErrInvalid reports a request that names something malformed.
	ErrInvalid = sentinel(false, 50, 5, 2, http.StatusBadRequest, CodeValidation, "the request is not valid")
	// ErrUnknownField reports a request body with a field its route does
	// not know (api/strict.go): a typo is refused, not ignored.
	ErrUnknownField = sentinel(false, 50, 5, 2, http.StatusBadRequest, CodeInvalidRequest, "the request has a field this route does not know")
	// ErrBadAddress reports a malformed mailbox.
	ErrBadAddress = sentinel(false, 53, 1, 3, http.StatusBadRequest, CodeInvalidAddress, "the address is not a valid mailbox")
	// ErrBadDestination reports a recipient at an address literal or
	// localhost (CheckRecipient).
	ErrBadDestination = sentinel(false, 50, 1, 2, http.StatusBadRequest, CodeInvalidAddress, "the recipient's domain is not a destination this gateway relays to")
	// ErrBadMessage reports a message whose header cannot be used (no From,
	// unparsable, a line over 998 octets).
	ErrBadMessage = sentinel(false, 50, 6, 0, http.StatusBadRequest, CodeInvalidMessage, "the message cannot be used")
	// ErrUnverifiedDomain reports a sender on a domain the account has not
	// verified; see unverifiedDomain.
	ErrUnverifiedDomain = sentinel(false, 50, 7, 1, http.StatusForbidden, CodeDomainNotVerified, "the sender domain is not verified for this account")
	// ErrAllSuppressed reports that no recipient is left after the suppression list.
	ErrAllSuppressed = sentinel(false, 50, 1, 1, http.StatusUnprocessableEntity, CodeRecipientsSuppressed,
		"every recipient is on the suppression list")
	// ErrTooBig reports a message over the size limit.
	ErrTooBig = sentinel(false, 52, 3, 4, http.StatusRequestEntityTooLarge, CodeMessageTooLarge, "the message exceeds the size limit")
	// ErrRateLimited reports that the account is over its sending rate.
	ErrRateLimited = sentinel(true, 51, 7, 1, http.StatusTooManyRequests, CodeRateLimited,
		"sending rate limit exceeded; retry later")
	// ErrMonthlyLimit reports an account over its monthly email limit;
	// temporary (452): the limit resets with the month, and a client that
	// retries then loses nothing. Enhanced code 4.5.3 as issue 13 asks.
	ErrMonthlyLimit = sentinel(true, 52, 5, 3, http.StatusTooManyRequests, CodeMonthlyLimit,
		"the account's monthly email limit is reached")
	// ErrAccountPaused reports an account whose sending is paused
	// (pipeline/reputation): its bounce or complaint rate passed the
	// limits, or an operator paused it. REST 403: retrying does not help
	// until the pause is lifted, which takes an operator. SMTP 451 4.7.1,
	// temporary: the message itself is fine, and an MTA that relays
	// through pigeonpost keeps it queued and delivers it once the pause is
	// lifted (within its queue lifetime, days), where a 5xx would bounce
	// every message sent meanwhile back to its sender.
	ErrAccountPaused = sentinel(true, 51, 7, 1, http.StatusForbidden, CodeAccountPaused,
		"sending is paused for this account: its bounce or complaint rate passed the limit, or an operator paused it; see GET /v1/reputation")
	// ErrUnavailable reports that storage is unreachable: nothing was accepted.
	ErrUnavailable = retrying(sentinel(true, 51, 3, 0, http.StatusServiceUnavailable, CodeUnavailable,
		"temporarily unable to accept mail; try again later"), 5*time.Second)
	// ErrBusy reports that a large message could not get its share of the
	// process's message memory (smtp.data_memory_bytes) in time: too many
	// are in progress; the client retries later.
	ErrBusy = retrying(sentinel(true, 51, 3, 1, http.StatusServiceUnavailable, CodeServerBusy,
		"too many large messages in progress; try again later"), 5*time.Second)
	// ErrAccountBusy reports that the account's messages in progress hold
	// its whole share of the message memory (smtp.data_memory_per_account):
	// refused at once, so that one account cannot make the others wait.
	ErrAccountBusy = retrying(sentinel(true, 51, 3, 1, http.StatusServiceUnavailable, CodeServerBusy,
		"this account has too many large messages in progress at once; try again shortly"), 5*time.Second)
	// ErrStorageFull reports that storage refused the write for lack of space.
	ErrStorageFull = retrying(sentinel(true, 52, 3, 1, http.StatusServiceUnavailable, CodeStorageFull,
		"insufficient system storage; try again later"), 30*time.Second)
	// ErrAuthFailed reports bad credentials.
	ErrAuthFailed = sentinel(false, 35, 7, 8, http.StatusUnauthorized, CodeUnauthorized, "invalid API key")
	// ErrAuthLocked refuses, unchecked, the authentication of an address
	// that failed too often lately (authguard.go): SMTP 454 4.7.0, the
	// temporary authentication failure of RFC 4954; REST 429.
	ErrAuthLocked = sentinel(true, 54, 7, 0, http.StatusTooManyRequests, CodeAuthLocked,
		"too many failed authentications from this address; try again later")
	// ErrMissingKey reports a request without credentials.
	ErrMissingKey = sentinel(false, 30, 7, 0, http.StatusUnauthorized, CodeUnauthorized,
		"missing API key: send Authorization: Bearer <key> or X-API-Key: <key>")
	// ErrPayloadTooLarge reports a request body over the limit.
	ErrPayloadTooLarge = sentinel(false, 52, 3, 4, http.StatusRequestEntityTooLarge, CodePayloadTooLarge, "the request body exceeds the size limit")
	// ErrForbidden reports a key that lacks the permission an operation needs.
	ErrForbidden = sentinel(false, 50, 7, 1, http.StatusForbidden, CodeForbidden, "this API key lacks the permission this needs")
	// ErrNotFound reports an unknown resource; see NotFound.
	ErrNotFound = sentinel(false, 50, 0, 0, http.StatusNotFound, CodeNotFound, "not found")
	// ErrConflict reports an operation that the resource's state does not allow.
	ErrConflict = sentinel(false, 50, 0, 0, http.StatusConflict, CodeConflict, "the resource's state does not allow this")
	// ErrIdempotencyMismatch reports an Idempotency-Key reused with a different request.
	ErrIdempotencyMismatch = sentinel(false, 50, 5, 0, http.StatusUnprocessableEntity, CodeIdempotencyReused,
		"this Idempotency-Key was used with a different request; use a new key for a new request")
	// ErrIdempotencyInProgress reports that a request with the same
	// Idempotency-Key is still running (or was interrupted moments ago).
	ErrIdempotencyInProgress = retrying(sentinel(true, 51, 3, 0, http.StatusConflict, CodeIdempotencyInUse,
		"a request with this Idempotency-Key is still in progress; retry shortly"), time.Second)
	// ErrKeyDomain reports a key limited to one domain used to send from another.
	ErrKeyDomain = sentinel(false, 50, 7, 1, http.StatusForbidden, CodeDomainNotAllowed,
		"this API key may not send from this domain: it is limited to another domain")
)

// NotFound is ErrNotFound naming what was not found ("email", "link").
func NotFound(what string) *Error { return ErrNotFound.With(what + " not found") }

// TooBig is ErrTooBig naming the limit.
func TooBig(limit int64) *Error {
	return ErrTooBig.Withf("message exceeds the limit of %d bytes", limit)
}

// PayloadTooLarge is ErrPayloadTooLarge naming the limit.
func PayloadTooLarge(limit int64) *Error {
	return ErrPayloadTooLarge.Withf("request body exceeds the limit of %d bytes", limit)
}

// Forbidden is ErrForbidden naming the permission that is missing.
func Forbidden(permission string) *Error {
	return ErrForbidden.Withf("this API key lacks the %q permission", permission)
}

func unverifiedDomain(domain string) *Error {
	return ErrUnverifiedDomain.Withf("sender domain %q is not verified for this account; add and verify it under /v1/domains", domain)
}

func keyDomain(domain string) *Error {
	return ErrKeyDomain.Withf("this API key may not send from domain %q: it is limited to another domain", domain)
}

// AsError returns err as *Error. Any other error is treated as a storage
// failure: a relay that must never lose mail fails temporarily.
func AsError(err error) *Error {
	var pe *Error
	if errors.As(err, &pe) {
		return pe
	}
	return ErrUnavailable.WithCause(err)
}
