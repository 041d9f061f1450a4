package deliver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/emersion/go-smtp"
)

// Error is the outcome of a failed attempt, classified the mail way
// (RFC 5321 §4.2.1).
type Error struct {
	Temporary bool   // retry later (4xx, connection/DNS failure, timeouts)
	Code      int    // SMTP reply code from the remote, 0 when none (e.g. connection failure)
	Enhanced  [3]int // enhanced status code (RFC 3463); derived from Temporary when the remote gave none
	Message   string // short, for the email record (no secrets)
	Host      string // remote host that answered, if any
	Err       error  // cause
	// Local marks pigeonpost's own failure (not the destination's answer):
	// when final, the email failed rather than bounced.
	Local bool
	// RetryAt, when set, is the earliest time to try again: the end of
	// the destination's suspension (Shaping).
	RetryAt time.Time
	// Destination is where the attempt went, as traffic shaping names it
	// (an MX host or a provider group), when shaping is on.
	Destination string
}

// Error formats e as "[host: ]code x.y.z message[: cause]".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("deliver: ")
	if e.Host != "" {
		b.WriteString(e.Host)
		b.WriteString(": ")
	}
	if e.Code != 0 {
		b.WriteString(strconv.Itoa(e.Code))
		b.WriteByte(' ')
	}
	if e.Enhanced != [3]int{} {
		fmt.Fprintf(&b, "%d.%d.%d ", e.Enhanced[0], e.Enhanced[1], e.Enhanced[2])
	}
	b.WriteString(e.Message)
	// The remote's reply is already in Message; add the cause only for
	// local failures, where it says what went wrong.
	if e.Err != nil && e.Code == 0 {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Reply is the remote's reply as "code x.y.z text", or "" when the
// failure was not a reply (a connection failure, a local decision).
func (e *Error) Reply() string {
	if e.Code == 0 {
		return ""
	}
	if e.Enhanced == [3]int{} {
		return fmt.Sprintf("%d %s", e.Code, e.Message)
	}
	return fmt.Sprintf("%d %d.%d.%d %s", e.Code, e.Enhanced[0], e.Enhanced[1], e.Enhanced[2], e.Message)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Enhanced status codes used for local conditions (RFC 3463, RFC 7505).
var (
	enhConnection   = [3]int{4, 4, 1}  // no answer from host
	enhBadConn      = [3]int{4, 4, 2}  // bad connection
	enhRouting      = [3]int{4, 4, 4}  // unable to route (MX host does not resolve)
	enhDNSTemp      = [3]int{4, 4, 3}  // directory server failure
	enhBadDomain    = [3]int{5, 1, 2}  // bad destination system address
	enhBadSyntax    = [3]int{5, 1, 3}  // bad destination mailbox address syntax
	enhNullMX       = [3]int{5, 1, 10} // recipient address has null MX
	enhPrivateDest  = [3]int{5, 4, 4}  // unable to route: the destination is not a public address
	enhNeedTLS      = [3]int{4, 7, 10} // encryption needed
	enhCongestion   = [3]int{4, 4, 5}  // mail system congestion: held back by traffic shaping
	enhNeedUTF8     = [3]int{5, 6, 7}  // non-ASCII address not permitted (RFC 6531)
	enhTempGeneric  = [3]int{4, 0, 0}
	enhPermGeneric  = [3]int{5, 0, 0}
	maxReplyMessage = 512
)

// smtpReplyError converts an error returned by the go-smtp client into an
// *Error. Replies keep the remote code, enhanced code and text; anything else
// (I/O, timeout, TLS) is temporary with Code 0.
func smtpReplyError(host string, err error) *Error {
	var de *Error
	if errors.As(err, &de) { // decided here, before the remote was asked (errNoSMTPUTF8)
		c := *de
		c.Host = host
		return &c
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		e := &Error{
			Temporary: se.Code/100 != 5,
			Code:      se.Code,
			Message:   shortReply(se.Message),
			Host:      host,
			Err:       err,
		}
		enh := [3]int(se.EnhancedCode)
		switch {
		case enh[0] == 4 || enh[0] == 5:
			e.Enhanced = enh
		case e.Temporary:
			e.Enhanced = enhTempGeneric
		default:
			e.Enhanced = enhPermGeneric
		}
		return e
	}
	return localError(host, enhBadConn, "transaction failed: "+netErrorMessage(err), err)
}

// localError is a temporary error without a remote reply.
func localError(host string, enh [3]int, msg string, err error) *Error {
	return &Error{Temporary: enh[0] != 5, Enhanced: enh, Message: msg, Host: host, Err: err}
}

// netErrorMessage is a short description of a network error.
func netErrorMessage(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	default:
		return "connection failed"
	}
}

// shortReply flattens a (possibly multi-line) reply text and bounds its length.
func shortReply(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxReplyMessage {
		s = strings.ToValidUTF8(s[:maxReplyMessage], "")
	}
	return s
}
