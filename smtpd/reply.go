package smtpd

import (
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
		Message:      pe.Message,
	}
}
