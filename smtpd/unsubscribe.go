package smtpd

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"log/slog"
	"mime"
	"net"
	"net/mail"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/pigeonpost/pigeonpost/pipeline"
)

// The unsubscribe mailbox: the mailto form of a send's List-Unsubscribe
// header, unsubscribe@<hostname>?subject=unsubscribe <id>. A mail client
// that does not speak RFC 8058's one-click POST sends that mail, through
// its provider, to this server's MX: a listener of its own (port 25), with
// no AUTH, that takes mail for that one address only, reads the id from
// the subject and hands it to the Unsubscriber. It stores nothing else:
// anyone may connect, so nothing they send can grow storage.

// Unsubscriber acts on the id of an unsubscribe link (sends.Service).
type Unsubscriber interface {
	Unsubscribe(ctx context.Context, id string) error
}

// UnsubscribeOptions configure the unsubscribe mailbox's server.
type UnsubscribeOptions struct {
	Hostname  string      // the mailbox is unsubscribe@Hostname
	TLSConfig *tls.Config // offered with STARTTLS, as MTAs expect
	Logger    *slog.Logger
}

// Bounds of the mailbox, open to anyone: the mail it reads (a subject and
// a short body are all a mail client sends) and the connections at once.
const (
	maxUnsubscribeMessage     = 64 << 10
	maxUnsubscribeConnections = 100
)

// UnsubscribeServer is the unsubscribe mailbox's SMTP server.
type UnsubscribeServer struct {
	smtp    *smtp.Server
	mailbox string
	u       Unsubscriber
	log     *slog.Logger
	slots   chan struct{}
}

// NewUnsubscribeServer returns the server of unsubscribe@opt.Hostname.
func NewUnsubscribeServer(u Unsubscriber, opt UnsubscribeOptions) *UnsubscribeServer {
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	s := &UnsubscribeServer{mailbox: "unsubscribe@" + strings.ToLower(opt.Hostname), u: u, log: opt.Logger,
		slots: make(chan struct{}, maxUnsubscribeConnections)}
	srv := smtp.NewServer(s)
	srv.Domain = opt.Hostname
	srv.MaxMessageBytes = maxUnsubscribeMessage
	srv.MaxRecipients = 1
	srv.ReadTimeout, srv.WriteTimeout = time.Minute, time.Minute
	srv.TLSConfig = opt.TLSConfig
	srv.ErrorLog = log.New(slogWriter{opt.Logger}, "", 0)
	s.smtp = srv
	return s
}

// Mailbox is the address the server takes mail for.
func (s *UnsubscribeServer) Mailbox() string { return s.mailbox }

// Serve accepts connections on l, maxUnsubscribeConnections at once.
func (s *UnsubscribeServer) Serve(l net.Listener) error {
	return s.smtp.Serve(&limitListener{Listener: l, slots: s.slots, metrics: NewMetrics(nil)})
}

// Shutdown stops accepting and waits for the sessions, until ctx is done.
func (s *UnsubscribeServer) Shutdown(ctx context.Context) error { return s.smtp.Shutdown(ctx) }

// NewSession implements smtp.Backend.
func (s *UnsubscribeServer) NewSession(*smtp.Conn) (smtp.Session, error) {
	return &unsubscribeSession{srv: s}, nil
}

type unsubscribeSession struct{ srv *UnsubscribeServer }

func (*unsubscribeSession) Mail(string, *smtp.MailOptions) error { return nil }

func (u *unsubscribeSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if !strings.EqualFold(to, u.srv.mailbox) {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1},
			Message: "no such mailbox here: this server takes mail for " + u.srv.mailbox + " only"}
	}
	return nil
}

// errNotUnsubscribe refuses a mail whose subject holds no valid link id.
var errNotUnsubscribe = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 6, 0},
	Message: `not an unsubscribe request: the subject must be "unsubscribe <id>", as in the List-Unsubscribe header`}

func (u *unsubscribeSession) Data(r io.Reader) error {
	m, err := mail.ReadMessage(r)
	if err != nil {
		_, _ = io.Copy(io.Discard, r)
		return errNotUnsubscribe
	}
	_, _ = io.Copy(io.Discard, m.Body)
	subject, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		return errNotUnsubscribe
	}
	// Replies and forwards add "Re:" and the like before it.
	_, id, ok := strings.Cut(subject, "unsubscribe ")
	if !ok {
		return errNotUnsubscribe
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = u.srv.u.Unsubscribe(ctx, strings.TrimSpace(id))
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pipeline.ErrNotFound): // an id that does not verify
		return errNotUnsubscribe
	}
	u.srv.log.Warn("an unsubscribe by mail failed", "err", err)
	return reply(err)
}

func (*unsubscribeSession) Reset()        {}
func (*unsubscribeSession) Logout() error { return nil }
