package smtpd

import (
	"strconv"
	"strings"

	"github.com/emersion/go-smtp"

	"github.com/pigeonpost/pigeonpost/pipeline"
)

// reply is the one place where pipeline errors become SMTP replies. go-smtp
// recognises only an unwrapped *smtp.SMTPError; anything else from Data
// would become a permanent 554 carrying internal text. Unknown errors are
// storage failures here: 451 4.3.0, so the client keeps the message.
func reply(err error) *smtp.SMTPError {
	pe := pipeline.AsError(err)
	return &smtp.SMTPError{
		Code:         pe.SMTPCode,
		EnhancedCode: smtp.EnhancedCode{pe.Enhanced[0], pe.Enhanced[1], pe.Enhanced[2]},
		Message:      replyText(pe.Message),
	}
}

// replyText makes a pipeline message safe as reply text: pipeline messages
// quote what the client sent ("address \"a<CR>b@x\" contains forbidden
// characters"), and a CR or LF there would end the reply line early and
// let the rest read as another reply (RFC 5321 §4.2: text is printable, no
// CR or LF). Control characters become '?'. Found by FuzzDialogue.
func replyText(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

// The replies smtpd makes itself, at the protocol level; the pipeline's
// rejections go through reply. reply_test.go holds each in one table, which
// checks that its basic and enhanced classes agree. go-smtp only reads
// them: they are shared, never modified.
var (
	// AUTH with a mechanism other than PLAIN or LOGIN (RFC 4954 §4).
	replyUnsupportedMechanism = &smtp.SMTPError{Code: 504, EnhancedCode: smtp.EnhancedCode{5, 5, 4}, Message: "Unsupported authentication mechanism"}
	// AUTH when the pipeline could not check the key: not the client's
	// fault, so never 535 (RFC 4954 §6, "temporary authentication failure").
	replyAuthUnavailable = &smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Temporary authentication failure, try again later"}
	// MAIL on a connection without TLS (RFC 3207 §4).
	replyMustStartTLS = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Must issue a STARTTLS command first"}
	// MAIL before AUTH (RFC 4954 §6).
	replyAuthRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	// DATA that stopped coming: the client keeps the message.
	replyDataTimeout = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: "Timeout while receiving the message"}
	// DATA whose connection failed otherwise.
	replyDataError = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Error while receiving the message"}
	// A command whose handler panicked: logged with its stack, and the
	// client retries (STYLE 14). go-smtp alone would answer 421 and hang up.
	replyInternal = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Internal error, try again later"}
	// A session opened or hung up during shutdown (RFC 5321 §3.8).
	replyShuttingDown = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "Service shutting down, try again later"}
	// A connection beyond Options.MaxConnections.
	replyTooManyConnections  = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many connections, try again later"}
	replyMalformedPlain      = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 5, 2}, Message: "Malformed AUTH PLAIN response: base64 of authzid NUL authcid NUL password"}
	replyTooManyAuthFailures = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many failed authentications, closing connection"}
	// A non-ASCII address in a transaction whose MAIL FROM did not have
	// the SMTPUTF8 parameter (RFC 6531 §3.5: 550 at MAIL, 553 at RCPT).
	replyNonASCIISender    = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 6, 7}, Message: "Non-ASCII sender address requires the SMTPUTF8 parameter"}
	replyNonASCIIRecipient = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 6, 7}, Message: "Non-ASCII recipient address requires SMTPUTF8 in MAIL FROM"}
	replyTooManyFromIP     = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many connections from your address, try again later"}
)

// replyLineTooLong answers a DATA line longer than Options.MaxLineBytes,
// after which the session is closed (session.lineTooLong). Lines up to
// that limit are accepted and re-encoded by the pipeline when over 998.
func replyLineTooLong(limit int) *smtp.SMTPError {
	return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0},
		Message: "Message has a line longer than " + strconv.Itoa(limit) + " octets; closing connection"}
}

// replyQueued is the answer to DATA once Submit has stored the message: a
// code-250 *smtp.SMTPError is how go-smtp lets Data choose its success text.
func replyQueued(id string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "Ok: queued as " + id}
}

// wire is a one-line reply as written on the connection, for the replies
// smtpd writes itself outside go-smtp's command loop (the connection cap,
// hanging up at shutdown).
func wire(r *smtp.SMTPError) string {
	e := r.EnhancedCode
	return strconv.Itoa(r.Code) + " " + strconv.Itoa(e[0]) + "." + strconv.Itoa(e[1]) + "." + strconv.Itoa(e[2]) + " " + r.Message + "\r\n"
}
