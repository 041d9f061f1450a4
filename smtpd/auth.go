package smtpd

import "github.com/emersion/go-sasl"

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
