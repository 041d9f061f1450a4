package smtpd

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// authUser is the only user name: the password is the API key.
const authUser = "apikey"

type session struct {
	srv    *Server
	conn   *smtp.Conn
	ip     string
	secret string // the API key this session authenticated with
	key    *store.Key
	from   string
	rcpts  []string
	busy   atomic.Bool // a transaction is in progress (MAIL accepted, not yet reset)
}

var _ smtp.AuthSession = (*session)(nil)

func (s *session) isTLS() bool {
	_, ok := s.conn.TLSConnectionState()
	return ok
}

// AuthMechanisms: go-smtp advertises and accepts them only after TLS.
func (s *session) AuthMechanisms() []string {
	return []string{sasl.Plain, sasl.Login}
}

func (s *session) Auth(mech string) (sasl.Server, error) {
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				return s.authFailed()
			}
			return s.login(username, password)
		}), nil
	case sasl.Login:
		return &loginServer{authenticate: s.login}, nil
	}
	return nil, &smtp.SMTPError{Code: 504, EnhancedCode: smtp.EnhancedCode{5, 5, 4}, Message: "Unsupported authentication mechanism"}
}

func (s *session) login(username, password string) error {
	if !strings.EqualFold(username, authUser) {
		return s.authFailed()
	}
	ctx, cancel := s.context()
	defer cancel()
	k, err := s.srv.svc.Authenticate(ctx, password)
	if err != nil {
		var pe *pipeline.Error
		if errors.As(err, &pe) && pe.Code == pipeline.ErrAuthFailed().Code {
			return s.authFailed()
		}
		// Storage trouble is not the client's fault: 454, never 535.
		return &smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Temporary authentication failure, try again later"}
	}
	s.srv.failures.reset(s.ip)
	s.secret, s.key = password, k
	return nil
}

// authFailed slows down repeated failures from one IP (S4), then answers 535.
func (s *session) authFailed() error {
	s.srv.opt.Metrics.authFailures.Inc()
	n := s.srv.failures.add(s.ip, time.Now())
	if d := s.srv.opt.FailureDelay * time.Duration(min(n-1, 5)); d > 0 {
		time.Sleep(d)
	}
	return reply(pipeline.ErrAuthFailed())
}

func (s *session) context() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if !s.isTLS() {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Must issue a STARTTLS command first"}
	}
	if s.key == nil {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	}
	ctx, cancel := s.context()
	defer cancel()
	// Look the key up again (cached) so that a revoked key stops at the next MAIL.
	k, err := s.srv.svc.Authenticate(ctx, s.secret)
	if err != nil {
		return reply(err)
	}
	s.key = k
	if err := s.srv.svc.CheckSender(ctx, k, from); err != nil {
		return reply(err)
	}
	s.from = from
	s.busy.Store(true)
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if _, err := pipeline.ParseAddress(to); err != nil {
		return reply(err)
	}
	s.rcpts = append(s.rcpts, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	start := time.Now()
	body, err := s.readData(r)
	if err != nil {
		return err
	}
	ctx, cancel := s.context()
	defer cancel()
	receipt, err := s.srv.svc.Submit(ctx, pipeline.Submission{
		Key: s.key, Source: "smtp", EnvelopeFrom: s.from, Recipients: s.rcpts, Message: body,
	})
	s.srv.opt.Metrics.dataSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		s.srv.opt.Logger.Info("message refused", "ip", s.ip, "key", s.key.ID, "err", err)
		return reply(err)
	}
	s.srv.opt.Logger.Debug("message queued", "ids", receipt.IDs, "key", s.key.ID)
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "OK queued as " + receipt.IDs[0]}
}

// readData reads the message, normalising bare CR and LF, with an idle
// deadline per read and an overall bound. go-smtp would otherwise keep the
// deadline it set at the DATA command for the whole transfer, and answer a
// timeout with a permanent 554.
func (s *session) readData(r io.Reader) ([]byte, error) {
	nc := s.conn.Conn()
	deadline := time.Now().Add(s.srv.opt.DataTimeout)
	defer func() {
		if s.srv.opt.ReadTimeout > 0 {
			_ = nc.SetReadDeadline(time.Now().Add(s.srv.opt.ReadTimeout))
		}
	}()
	idle := &idleReader{r: r, conn: nc, idle: s.srv.opt.ReadTimeout, deadline: deadline}
	var buf bytes.Buffer
	_, err := buf.ReadFrom(pipeline.NormalizeCRLF(idle))
	if err == nil {
		return buf.Bytes(), nil
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return nil, se // e.g. 552 5.3.4 from go-smtp's size limit
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return nil, &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: "Timeout while receiving the message"}
	}
	return nil, &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Error while receiving the message"}
}

// idleReader pushes the connection's read deadline forward on each read,
// never past the overall deadline.
type idleReader struct {
	r        io.Reader
	conn     net.Conn
	idle     time.Duration
	deadline time.Time
}

func (ir *idleReader) Read(p []byte) (int, error) {
	d := ir.deadline
	if ir.idle > 0 {
		if next := time.Now().Add(ir.idle); next.Before(d) {
			d = next
		}
	}
	_ = ir.conn.SetReadDeadline(d)
	return ir.r.Read(p)
}

// Reset ends a transaction; go-smtp calls it after the reply to DATA too,
// so during a shutdown the session is hung up once its reply is out.
func (s *session) Reset() {
	s.from, s.rcpts = "", nil
	s.busy.Store(false)
	if s.srv.isClosing() {
		s.hangUp()
	}
}

func (s *session) Logout() error {
	s.srv.mu.Lock()
	delete(s.srv.sessions, s)
	s.srv.mu.Unlock()
	return nil
}

// hangUp tells the client the service is going away and closes the
// connection (used at shutdown, between transactions only).
func (s *session) hangUp() {
	nc := s.conn.Conn()
	_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = io.WriteString(nc, "421 4.3.2 Service shutting down, try again later\r\n")
	_ = nc.Close()
}
