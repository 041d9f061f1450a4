package smtpd

import (
	"errors"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// loginServer is the server side of the obsolete but widely used LOGIN
// mechanism (Outlook, PHPMailer, older Nodemailer): "Username:" then
// "Password:", each answered in base64 (go-smtp does the encoding).
// go-sasl ships only the client side.
type loginServer struct {
	authenticate func(username, password string) error
	username     string
	step         int
}

var _ sasl.Server = (*loginServer)(nil)

func (l *loginServer) Next(response []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		if response == nil { // no initial response
			l.step = 1
			return []byte("Username:"), false, nil
		}
		l.username, l.step = string(response), 2
		return []byte("Password:"), false, nil
	case 1:
		l.username, l.step = string(response), 2
		return []byte("Password:"), false, nil
	default:
		return nil, true, l.authenticate(l.username, string(response))
	}
}

// plainServer is go-sasl's PLAIN server, whose own error for a response
// that is not authzid NUL authcid NUL password (go-smtp answers it 454
// with the library's words) becomes 501 5.5.2 saying what PLAIN takes.
// What the authenticator returns is an SMTP reply already and passes.
type plainServer struct{ sasl.Server }

func (p plainServer) Next(response []byte) ([]byte, bool, error) {
	challenge, done, err := p.Server.Next(response)
	var reply *smtp.SMTPError
	if err != nil && !errors.As(err, &reply) {
		return nil, true, replyMalformedPlain
	}
	return challenge, done, err
}
