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
	"github.com/pigeonpost/pigeonpost/pipeline/feedback"
)

// The gateway's own mailboxes, on a listener of their own (port 25, where
// the hostname's MX points), with no AUTH: anyone may send to them, so
// nothing they send is stored, and each takes its one kind of mail.
//
//   - unsubscribe@<hostname>: the mailto form of a send's List-Unsubscribe
//     header, "unsubscribe <id>" in the subject, for the mail clients that
//     do not speak RFC 8058's one-click POST. The id goes to the
//     Unsubscriber.
//   - the reports mailbox (smtp.reports_mailbox): complaints from feedback
//     loops (ARF) and bounces that came after the remote's 250 (DSN). The
//     report goes to the ReportReceiver, which reads it as it streams.

// Unsubscriber acts on the id of an unsubscribe link (sends.Service).
type Unsubscriber interface {
	Unsubscribe(ctx context.Context, id string) error
}

// ReportReceiver applies a report (feedback.Service).
type ReportReceiver interface {
	Receive(ctx context.Context, r io.Reader) (*feedback.Outcome, error)
}

// MailboxOptions configure the mailboxes' server.
type MailboxOptions struct {
	Hostname string // the unsubscribe mailbox is unsubscribe@Hostname
	// ReportsMailbox is the reports mailbox's address; "" (or a nil
	// ReportReceiver) leaves it out.
	ReportsMailbox string
	TLSConfig      *tls.Config // offered with STARTTLS, as MTAs expect
	Logger         *slog.Logger
}

// Bounds of the mailboxes, open to anyone: the connections at once (and
// from one address), the mail they read (a report returns the original message, attachments and
// all: it is read as it streams and only its headers are kept), and the
// part of an unsubscribe mail that is read (a subject is all it needs).
const (
	maxMailboxMessage          = 40 << 20
	maxUnsubscribeHeader       = 64 << 10
	maxMailboxConnections      = 100
	maxMailboxConnectionsPerIP = 10
	// mailboxMaxLife bounds a mailbox connection, as smtp.max_session_time
	// does a submission one.
	mailboxMaxLife       = 30 * time.Minute
	mailboxActionTimeout = 30 * time.Second
)

// MailboxServer is the mailboxes' SMTP server.
type MailboxServer struct {
	smtp        *smtp.Server
	unsubscribe string
	reports     string
	u           Unsubscriber
	rr          ReportReceiver
	log         *slog.Logger
	conns       *connLimit
}

// NewMailboxServer returns the server of unsubscribe@opt.Hostname and of
// the reports mailbox.
func NewMailboxServer(u Unsubscriber, rr ReportReceiver, opt MailboxOptions) *MailboxServer {
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	s := &MailboxServer{unsubscribe: "unsubscribe@" + strings.ToLower(opt.Hostname), u: u, rr: rr, log: opt.Logger,
		conns: newConnLimit(maxMailboxConnections, maxMailboxConnectionsPerIP)}
	if rr != nil {
		s.reports = strings.ToLower(opt.ReportsMailbox)
	}
	srv := smtp.NewServer(s)
	srv.Domain = opt.Hostname
	srv.MaxMessageBytes = maxMailboxMessage
	srv.MaxRecipients = 1
	srv.ReadTimeout, srv.WriteTimeout = time.Minute, time.Minute
	srv.TLSConfig = opt.TLSConfig
	srv.ErrorLog = log.New(slogWriter{opt.Logger}, "", 0)
	s.smtp = srv
	return s
}

// Mailbox is the address of the unsubscribe mailbox.
func (s *MailboxServer) Mailbox() string { return s.unsubscribe }

// Serve accepts connections on l, maxMailboxConnections at once.
func (s *MailboxServer) Serve(l net.Listener) error {
	return s.smtp.Serve(&limitListener{Listener: l, limit: s.conns, metrics: NewMetrics(nil), maxLife: mailboxMaxLife})
}

// Shutdown stops accepting and waits for the sessions, until ctx is done.
func (s *MailboxServer) Shutdown(ctx context.Context) error { return s.smtp.Shutdown(ctx) }

// NewSession implements smtp.Backend.
func (s *MailboxServer) NewSession(*smtp.Conn) (smtp.Session, error) {
	return &mailboxSession{srv: s}, nil
}

type mailboxSession struct {
	srv *MailboxServer
	to  string // the mailbox of the recipient accepted
}

func (*mailboxSession) Mail(string, *smtp.MailOptions) error { return nil }

func (m *mailboxSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	to = strings.ToLower(to)
	if to != m.srv.unsubscribe && (m.srv.reports == "" || to != m.srv.reports) {
		mailboxes := m.srv.unsubscribe
		if m.srv.reports != "" {
			mailboxes += " and " + m.srv.reports
		}
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1},
			Message: "no such mailbox here: this server takes mail for " + mailboxes + " only"}
	}
	m.to = to
	return nil
}

func (m *mailboxSession) Data(r io.Reader) error {
	// Whatever is left unread is drained by go-smtp.
	if m.to == m.srv.reports {
		return m.report(r)
	}
	return m.unsubscribeRequest(io.LimitReader(r, maxUnsubscribeHeader))
}

// errNotUnsubscribe refuses a mail whose subject holds no valid link id.
var errNotUnsubscribe = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 6, 0},
	Message: `not an unsubscribe request: the subject must be "unsubscribe <id>", as in the List-Unsubscribe header`}

func (m *mailboxSession) unsubscribeRequest(r io.Reader) error {
	msg, err := mail.ReadMessage(r)
	if err != nil {
		return errNotUnsubscribe
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		return errNotUnsubscribe
	}
	// Replies and forwards add "Re:" and the like before it.
	_, id, ok := strings.Cut(subject, "unsubscribe ")
	if !ok {
		return errNotUnsubscribe
	}
	ctx, cancel := context.WithTimeout(context.Background(), mailboxActionTimeout)
	defer cancel()
	err = m.srv.u.Unsubscribe(ctx, strings.TrimSpace(id))
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pipeline.ErrNotFound): // an id that does not verify
		return errNotUnsubscribe
	}
	m.srv.log.Warn("an unsubscribe by mail failed", "err", err)
	return reply(err)
}

// report hands a report to the receiver. A report that cannot be read, or
// names no email of this server, is refused with the receiver's words.
func (m *mailboxSession) report(r io.Reader) error {
	ctx, cancel := context.WithTimeout(context.Background(), mailboxActionTimeout)
	defer cancel()
	o, err := m.srv.rr.Receive(ctx, r)
	if err != nil {
		if pe := pipeline.AsError(err); pe.Temporary {
			m.srv.log.Warn("a report by mail failed", "err", err)
		}
		return reply(err)
	}
	m.srv.log.Info("report received", "email", o.EmailID, "kind", o.Kind, "result", o.Result, "reason", o.Reason)
	return nil
}

func (*mailboxSession) Reset()        {}
func (*mailboxSession) Logout() error { return nil }
