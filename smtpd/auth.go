package smtpd

import (
	"sync"
	"time"

	"github.com/emersion/go-sasl"
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

// failureTracker counts recent AUTH failures per IP so that guessing keys
// gets slower with every try. Entries expire after failureWindow.
type failureTracker struct {
	mu    sync.Mutex
	byIP  map[string]failures
	clean time.Time
}

type failures struct {
	count int
	last  time.Time
}

const failureWindow = 10 * time.Minute

func newFailureTracker() *failureTracker {
	return &failureTracker{byIP: map[string]failures{}}
}

// add records a failure and returns the number of recent failures from ip.
func (t *failureTracker) add(ip string, now time.Time) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if now.Sub(t.clean) > failureWindow {
		for k, f := range t.byIP {
			if now.Sub(f.last) > failureWindow {
				delete(t.byIP, k)
			}
		}
		t.clean = now
	}
	f := t.byIP[ip]
	if now.Sub(f.last) > failureWindow {
		f.count = 0
	}
	f.count++
	f.last = now
	t.byIP[ip] = f
	return f.count
}

func (t *failureTracker) reset(ip string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.byIP, ip)
}
