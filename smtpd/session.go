package smtpd

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/pigeonpost/pigeonpost/internal/membudget"
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
	size   int64 // SIZE= of MAIL FROM (RFC 1870), 0 when not declared
	utf8   bool  // MAIL FROM had SMTPUTF8 (RFC 6531): addresses may be non-ASCII
	rcpts  []string
	busy   atomic.Bool // a transaction is in progress (MAIL accepted, not yet reset)

	authFailures int // failed AUTHs of this session (maxSessionAuthFailures)
}

var _ smtp.AuthSession = (*session)(nil)

func (s *session) isTLS() bool {
	_, ok := s.conn.TLSConnectionState()
	return ok
}

// AuthMechanisms are advertised after TLS only (Options: go-smtp's own
// gate is off, so that AUTH before TLS is answered as MAIL is).
func (s *session) AuthMechanisms() []string {
	if !s.isTLS() {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

// Auth before TLS is 530 5.7.0 and looks nothing up: the credentials would
// have crossed the network in clear.
func (s *session) Auth(mech string) (sasl.Server, error) {
	if !s.isTLS() {
		return nil, replyMustStartTLS
	}
	return s.mechanism(mech)
}

// mechanism is the server side of mech, once TLS is up.
func (s *session) mechanism(mech string) (sasl.Server, error) {
	switch mech {
	case sasl.Plain:
		return plainServer{sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				return s.authFailed()
			}
			return s.login(username, password)
		})}, nil
	case sasl.Login:
		return &loginServer{authenticate: s.login}, nil
	}
	return nil, replyUnsupportedMechanism
}

func (s *session) login(username, password string) (err error) {
	defer s.recoverCommand("AUTH", &err)
	// No key contains NUL, CR or LF: such a secret is refused here, never
	// looked up, so it cannot reach the pipeline or a log line.
	if !strings.EqualFold(username, authUser) || strings.ContainsAny(password, "\x00\r\n") {
		return s.authFailed()
	}
	ctx, cancel := s.context()
	defer cancel()
	k, err := s.srv.pipe.AuthenticateFrom(ctx, password, s.ip)
	if err != nil {
		if errors.Is(err, pipeline.ErrAuthFailed) {
			return s.authFailed()
		}
		if errors.Is(err, pipeline.ErrAuthLocked) {
			return reply(err)
		}
		// Storage trouble is not the client's fault: 454, never 535.
		s.srv.opt.Logger.Warn("AUTH could not check the key", "ip", s.ip, "err", err)
		return replyAuthUnavailable
	}
	s.secret, s.key = password, k
	return nil
}

// maxSessionAuthFailures is how many failed AUTHs a session may make:
// then it is cut, so that guessing takes a new connection each time (the
// pipeline slows and locks out the address across connections).
const maxSessionAuthFailures = 3

// authFailed answers 535 5.7.8 (RFC 4954 §6), or, at the session's
// maxSessionAuthFailures-th failure, 421 and hangs up.
func (s *session) authFailed() error {
	s.srv.opt.Metrics.authFailures.Inc()
	if s.authFailures++; s.authFailures >= maxSessionAuthFailures {
		nc := s.conn.Conn()
		_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = io.WriteString(nc, wire(replyTooManyAuthFailures))
		_ = nc.Close()
		return replyTooManyAuthFailures
	}
	return reply(pipeline.ErrAuthFailed)
}

// recoverCommand, deferred first in each command that calls out of smtpd,
// turns a panic into 451 4.3.0 and an error log with the stack: the client
// keeps its message and its session, and the server keeps serving (STYLE
// 14). Without it go-smtp would recover, answer 421 4.0.0, hang up and log
// only to its ErrorLog, which slogWriter keeps at debug level.
func (s *session) recoverCommand(cmd string, err *error) {
	if v := recover(); v != nil {
		s.srv.opt.Logger.Error("panic in SMTP command", "cmd", cmd, "ip", s.ip, "panic", v, "stack", string(debug.Stack()))
		*err = replyInternal
	}
}

func (s *session) context() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

func (s *session) Mail(from string, opts *smtp.MailOptions) (err error) {
	defer s.recoverCommand("MAIL", &err)
	if !s.isTLS() {
		return replyMustStartTLS
	}
	if s.key == nil {
		return replyAuthRequired
	}
	utf8 := opts != nil && opts.UTF8
	if !utf8 && !isASCII(from) {
		return replyNonASCIISender
	}
	ctx, cancel := s.context()
	defer cancel()
	// Look the key up again (cached) so that a revoked key stops at the next MAIL.
	k, err := s.srv.pipe.Authenticate(ctx, s.secret)
	if err != nil {
		return reply(err)
	}
	s.key = k
	if err := s.srv.pipe.CheckSender(ctx, k, from); err != nil {
		return reply(err)
	}
	s.from, s.utf8 = from, utf8
	if opts != nil {
		s.size = opts.Size
	}
	s.busy.Store(true)
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) (err error) {
	defer s.recoverCommand("RCPT", &err)
	if !s.utf8 && !isASCII(to) {
		return replyNonASCIIRecipient
	}
	if err := s.srv.pipe.CheckRecipient(to); err != nil {
		return reply(err)
	}
	s.rcpts = append(s.rcpts, to)
	return nil
}

func (s *session) Data(r io.Reader) (err error) {
	defer s.recoverCommand("DATA", &err)
	start := time.Now()
	// The admission's round trip runs while the body is read; Submit
	// answers with it at the final dot. Released (its charge given back
	// unless the message is stored) whatever happens to the body.
	actx, acancel := s.context()
	defer acancel()
	adm := s.srv.pipe.BeginAdmission(actx, s.key, s.rcpts)
	defer adm.Release()
	body, longest, res, err := s.readData(r)
	if err != nil {
		return err
	}
	if res != nil {
		defer res.Release() // after Submit, which holds the copies it was reserved for
	}
	ctx, cancel := s.context()
	defer cancel()
	receipt, err := s.srv.pipe.Submit(ctx, pipeline.Submission{
		Key: s.key, Source: "smtp", EnvelopeFrom: s.from, Recipients: s.rcpts, Message: body, LongestLine: longest,
		Admission: adm,
	})
	s.srv.opt.Metrics.dataSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		s.srv.opt.Logger.Info("message refused", "ip", s.ip, "key", s.key.ID, "err", err)
		return reply(err)
	}
	s.srv.opt.Logger.Debug("message queued", "ids", receipt.IDs, "key", s.key.ID)
	return replyQueued(receipt.IDs[0])
}

// Reading DATA. A message that fits in firstChunk is read as is: small
// messages never wait for anything. A larger one must reserve its share of
// Options.Budget, pipeline.MessageCost of what it has read so far, before it reads
// more; when the budget is taken the session stops reading, so that its
// client is held back by TCP, until the budget frees up or the data deadline
// passes (451 4.3.1). It is read into chunks of dataChunk, or into one
// piece of the size the client declared with MAIL FROM SIZE=, and then into
// one buffer of its exact size, instead of a buffer that doubles (which held
// up to three times the message while it grew, and then up to twice). The
// chunks are pooled: only the message's own buffer is allocated for it.
const (
	firstChunk = 64 << 10
	dataChunk  = 256 << 10
)

var (
	firstChunks = sync.Pool{New: func() any { b := make([]byte, firstChunk); return &b }}
	dataChunks  = sync.Pool{New: func() any { b := make([]byte, dataChunk); return &b }}
)

// errBusy answers a DATA that could not get its share of the memory budget
// before the data deadline: the client keeps the message and retries.
var errBusy = reply(pipeline.ErrBusy)

// errOverShare answers a DATA whose account holds its whole share of the
// budget (smtp.data_memory_per_account) with other messages: it is refused
// at once rather than made to wait, and the client retries.
var errOverShare = reply(pipeline.ErrAccountBusy)

// readData reads the message, normalising bare CR and LF, with an idle
// deadline per read and an overall bound. go-smtp would otherwise keep the
// deadline it set at the DATA command for the whole transfer, and answer a
// timeout with a permanent 554. A message larger than firstChunk comes with
// its reservation of the budget, which the caller releases once it is done
// with the message. longest is its longest line, measured on the way
// (pipeline.Submission.LongestLine).
func (s *session) readData(r io.Reader) (_ []byte, longest int, _ *membudget.Reservation, _ error) {
	nc := s.conn.Conn()
	deadline := time.Now().Add(s.srv.opt.DataTimeout)
	defer func() {
		if s.srv.opt.ReadTimeout > 0 {
			_ = nc.SetReadDeadline(time.Now().Add(s.srv.opt.ReadTimeout))
		}
	}()
	idle := &idleReader{r: r, conn: nc, idle: s.srv.opt.ReadTimeout, deadline: deadline}
	src := pipeline.NormalizeCRLF(idle)

	scratch := firstChunks.Get().(*[]byte)
	defer firstChunks.Put(scratch)
	n, err := io.ReadFull(src, *scratch)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return bytes.Clone((*scratch)[:n]), src.LongestLine(), nil, nil
	}
	if err != nil {
		return nil, 0, nil, s.dataError(err)
	}

	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	res := s.srv.opt.Budget.ReserveFor(s.key.AccountID)
	body, err := s.readLarge(ctx, src, (*scratch)[:n], res)
	if err != nil {
		res.Release()
		switch err {
		case errBusy:
			s.srv.opt.Metrics.budgetTimeouts.Inc()
			s.srv.opt.Logger.Info("message refused: no memory budget before the data deadline",
				"ip", s.ip, "key", s.key.ID, "declared_size", s.size)
		case errOverShare:
			s.srv.opt.Logger.Info("message refused: the account holds its share of the memory budget",
				"ip", s.ip, "key", s.key.ID, "declared_size", s.size)
		}
		return nil, 0, nil, err
	}
	res.Shrink(pipeline.MessageCost(int64(len(body))))
	return body, src.LongestLine(), res, nil
}

// readLarge reads the rest of a message whose first bytes are first, growing
// res before each piece it allocates.
func (s *session) readLarge(ctx context.Context, src io.Reader, first []byte, res *membudget.Reservation) ([]byte, error) {
	var full [][]byte    // pieces read, in order
	var pooled []*[]byte // the chunks among them, and piece, given back at the end
	defer func() {
		for _, c := range pooled {
			dataChunks.Put(c)
		}
	}()
	allocated := 0
	alloc := func(size int) ([]byte, error) {
		if err := res.Grow(ctx, pipeline.MessageCost(int64(allocated+size))); err != nil {
			if errors.Is(err, membudget.ErrOverShare) {
				return nil, errOverShare
			}
			return nil, errBusy
		}
		allocated += size
		if size == dataChunk {
			c := dataChunks.Get().(*[]byte)
			pooled = append(pooled, c)
			return (*c)[:0], nil
		}
		return make([]byte, 0, size), nil
	}
	// Room for the whole message when the client declared its size (and a
	// little for bare line endings that become CRLF), else a chunk.
	size := dataChunk
	if limit := s.srv.opt.MaxMessageBytes; s.size > int64(len(first)) && limit > 0 && s.size <= limit {
		size = int(s.size) + 4096
	}
	piece, err := alloc(size)
	if err != nil {
		return nil, err
	}
	piece = append(piece, first...)
	total := len(first)
	for {
		if len(piece) == cap(piece) {
			full = append(full, piece)
			if piece, err = alloc(dataChunk); err != nil {
				return nil, err
			}
		}
		n, err := src.Read(piece[len(piece):cap(piece)])
		piece = piece[:len(piece)+n]
		total += n
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, s.dataError(err)
		}
	}
	if len(full) == 0 {
		// A pooled chunk goes back; a SIZE= far above the message: do not
		// keep the room.
		if len(pooled) > 0 || cap(piece)-len(piece) > len(piece)/8+4096 {
			return bytes.Clone(piece), nil
		}
		return piece, nil
	}
	out := make([]byte, 0, total)
	for _, p := range full {
		out = append(out, p...)
	}
	return append(out, piece...), nil
}

// dataError is the reply to a failed read of DATA.
func (s *session) dataError(err error) error {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se // e.g. 552 5.3.4 from go-smtp's size limit
	}
	if errors.Is(err, smtp.ErrTooLongLine) {
		return s.lineTooLong()
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return replyDataTimeout
	}
	return replyDataError
}

// lineTooLong answers a DATA line longer than Options.MaxLineBytes once,
// permanently, and ends the connection. go-smtp's line reader fails for
// good once a line is past its limit: left to go-smtp, the client would get
// the reply to DATA and then "500 5.4.0 Too long line" as the reply to its
// next command, and lose step. The reply is written first, the writing side
// closed, and what the client still sends read and dropped (bounded by the
// data deadline and the size limit), so that the client, which reads the
// reply after its final dot, gets it rather than a reset.
func (s *session) lineTooLong() error {
	s.srv.opt.Logger.Info("message refused: a line over the limit", "ip", s.ip, "limit", s.srv.opt.MaxLineBytes)
	nc := s.conn.Conn()
	r := replyLineTooLong(s.srv.opt.MaxLineBytes)
	_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := io.WriteString(nc, wire(r)); err == nil {
		if cw, ok := nc.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		idle := &idleReader{r: nc, conn: nc, idle: s.srv.opt.ReadTimeout, deadline: time.Now().Add(s.srv.opt.DataTimeout)}
		_, _ = io.Copy(io.Discard, io.LimitReader(idle, max(s.srv.opt.MaxMessageBytes, 1<<20)))
	}
	_ = nc.Close()
	return r
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

// isASCII reports whether an address has no byte over 0x7f: without
// SMTPUTF8 (RFC 6531 §3.4) a non-ASCII one is refused.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// Reset ends a transaction; go-smtp calls it after the reply to DATA too,
// so during a shutdown the session is hung up once its reply is out.
func (s *session) Reset() {
	s.from, s.size, s.utf8, s.rcpts = "", 0, false, nil
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
	_, _ = io.WriteString(nc, wire(replyShuttingDown))
	_ = nc.Close()
}
