package deliver

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/pigeonpost/pigeonpost/internal/safehttp"
)

// Envelope is one message for one recipient.
type Envelope struct {
	From string // reverse-path; empty for the null sender (bounces)
	To   string
	Data []byte // the message, header and body; CRLF line endings (bare LF is sent as CRLF)
	// Prefix is sent before Data: header fields added at delivery (the
	// DKIM-Signature), kept apart so that Data is not copied to prepend them.
	Prefix []byte
	// Route, when set, is where To goes (Transport.Route, looked up
	// earlier); nil: Deliver looks it up.
	Route *Route
	// Lease, when set, is a connection slot at the destination (Shaping).
	// A new connection kept for reuse takes it over and holds it while
	// idle; the caller releases it after Deliver (a no-op then), once it
	// has acted on the reply, so that no other message gets the slot
	// before a back-off reply has suspended the destination.
	Lease *Lease
}

// Route is where a recipient's mail goes: the hosts to try in order (the
// relay host, or the domain's MX hosts) and the port.
type Route struct {
	Hosts []string
	Port  string
}

// Route looks up where mail to the address `to` goes. Its errors are
// those Deliver would return for the lookup (*Error).
func (t *Transport) Route(ctx context.Context, to string) (*Route, error) {
	hosts, port, err := t.destinations(ctx, to)
	if err != nil {
		return nil, err
	}
	return &Route{Hosts: hosts, Port: port}, nil
}

// Transport sends messages over SMTP. Its methods are safe for concurrent
// use; the fields must not change while a Deliver is running.
type Transport struct {
	Hostname   string        // our EHLO name; empty means os.Hostname
	Port       int           // destination port for MX hosts (25 in production; tests use a loopback sink port); 0 means 25
	RelayHost  string        // "host:port" smarthost; when set, MX lookup is skipped
	Resolver   *Resolver     // nil means the system resolver
	Timeout    time.Duration // per attempt: dial, each command and DATA; 0 means 5 minutes
	RequireTLS bool          // when true, never send in plaintext (temporary error if STARTTLS is not offered or fails)
	TLSConfig  *tls.Config   // for STARTTLS; nil → opportunistic with InsecureSkipVerify (MX certs are rarely valid for the name; RFC 7435 opportunistic security) and ServerName set
	// AllowPrivate lets recipient hosts be at loopback, private and
	// link-local addresses; when false, such an address is never dialed
	// (the relay host, the operator's, always is).
	AllowPrivate bool

	pool sessionPool // sessions kept for the next message (pool.go)
}

const (
	defaultSMTPTimeout = 5 * time.Minute
	maxQuitTimeout     = 10 * time.Second
)

// Delivered is what the destination said when it took a message.
type Delivered struct {
	Host  string // the host that accepted it: an MX host or the relay host
	Reply string // its reply to the end of DATA ("250 2.0.0 Ok: queued as …"), flattened and bounded
}

// Deliver sends env to its destination: the relay host, or the recipient
// domain's MX hosts in order. It moves on to the next host (and the next
// address of a host) on connection failure, a 421 reply, any failure before
// the mail transaction (greeting, EHLO, STARTTLS) and, with RequireTLS, when
// TLS cannot be set up; it stops at the first host that answers the
// transaction. Returns nil when the remote accepted DATA with 2xx; otherwise
// *Error.
//
// Replies to MAIL, RCPT and DATA keep their class: 4xx is temporary, 5xx
// permanent. Failures before the transaction never bounce: they are
// temporary, keeping the remote code if there was one.
//
// When STARTTLS is offered it is used. If the TLS handshake fails and
// RequireTLS is false, the same address is tried once more in plaintext
// (RFC 7435).
func (t *Transport) Deliver(ctx context.Context, env Envelope) error {
	_, err := t.DeliverWithReply(ctx, env)
	return err
}

// DeliverWithReply is Deliver, also returning which host accepted the
// message and its reply, for the record of the attempt. A failure's host
// and reply are in its *Error (Host, Reply).
func (t *Transport) DeliverWithReply(ctx context.Context, env Envelope) (Delivered, error) {
	if err := ctx.Err(); err != nil {
		return Delivered{}, localError("", enhBadConn, netErrorMessage(err), err)
	}
	if badLine(env.From) {
		return Delivered{}, &Error{Enhanced: [3]int{5, 1, 7}, Message: "invalid sender address"}
	}
	if badLine(env.To) {
		return Delivered{}, &Error{Enhanced: enhBadSyntax, Message: "invalid recipient address"}
	}
	route := env.Route
	if route == nil {
		var err error
		if route, err = t.Route(ctx, env.To); err != nil {
			return Delivered{}, err
		}
	}
	hosts, port := route.Hosts, route.Port
	last := localError("", enhRouting, "no destination host", nil)
	for _, host := range hosts {
		reply, e, next := t.deliverHost(ctx, host, port, env)
		if e == nil {
			return Delivered{Host: host, Reply: reply}, nil
		}
		last = e
		if !next || ctx.Err() != nil {
			break
		}
	}
	return Delivered{}, last
}

// destinations returns the hosts to try, in order, and the port.
func (t *Transport) destinations(ctx context.Context, to string) ([]string, string, error) {
	if t.RelayHost != "" {
		host, port, err := net.SplitHostPort(t.RelayHost)
		if err != nil {
			// No port: the submission is still SMTP, use port 25.
			host, port = strings.Trim(t.RelayHost, "[]"), "25"
		}
		return []string{host}, port, nil
	}
	port := "25"
	if t.Port != 0 {
		port = strconv.Itoa(t.Port)
	}
	at := strings.LastIndexByte(to, '@')
	if at <= 0 || at == len(to)-1 {
		return nil, "", &Error{Enhanced: enhBadSyntax, Message: "recipient address has no domain"}
	}
	domain := to[at+1:]
	if ip, ok := parseIPLiteral(domain); ok {
		return []string{ip.String()}, port, nil
	}
	hosts, err := t.resolver().LookupMX(ctx, domain)
	if err != nil {
		return nil, "", err
	}
	return hosts, port, nil
}

func (t *Transport) resolver() *Resolver {
	if t.Resolver != nil {
		return t.Resolver
	}
	return &Resolver{}
}

// addresses returns what to dial for host: an IP literal as is, the A/AAAA
// records from a configured resolver, or the name itself for the system
// dialer to resolve.
func (t *Transport) addresses(ctx context.Context, host string) ([]string, *Error) {
	if ip, ok := parseIPLiteral(host); ok {
		return []string{ip.String()}, nil
	}
	if t.Resolver == nil || t.Resolver.Addr == "" {
		return []string{host}, nil
	}
	addrs, err := t.Resolver.LookupHost(ctx, host)
	if err != nil {
		enh := enhRouting
		var de *Error
		if errors.As(err, &de) && de.Temporary {
			enh = enhDNSTemp
		}
		// A broken MX host is a routing problem, not a reason to bounce.
		return nil, localError("", enh, "cannot resolve "+host, err)
	}
	return addrs, nil
}

// deliverHost tries each address of host; next reports whether the caller
// should go on to the next host. On success, reply is the host's reply to
// the end of DATA.
func (t *Transport) deliverHost(ctx context.Context, host, port string, env Envelope) (reply string, e *Error, next bool) {
	addrs, e := t.addresses(ctx, host)
	if e != nil {
		return "", e, true
	}
	e = localError("", enhRouting, "no address for "+host, nil)
	for _, addr := range addrs {
		target := net.JoinHostPort(addr, port)
		reply, e, next = t.attempt(ctx, host, target, env, true)
		if e == nil {
			return reply, nil, false
		}
		if errors.Is(e, errTLSHandshake) && !t.RequireTLS && ctx.Err() == nil {
			// Opportunistic TLS failed: the same server, in plaintext.
			reply, e, next = t.attempt(ctx, host, target, env, false)
			if e == nil {
				return reply, nil, false
			}
		}
		if !next || ctx.Err() != nil {
			return "", e, false
		}
	}
	return "", e, true
}

// errPrivateDestination refuses a dial to an address that is not public.
var errPrivateDestination = errors.New("not a public address")

// publicOnly is a dialer's Control: it sees the address actually dialed,
// whatever name or literal led to it, so no DNS answer can slip an
// internal host past it.
func publicOnly(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	if ip, err := netip.ParseAddr(host); err != nil || !safehttp.Public(ip) {
		return errPrivateDestination
	}
	return nil
}

// errTLSHandshake marks a failed STARTTLS handshake.
var errTLSHandshake = errors.New("STARTTLS handshake failed")

// attempt runs one SMTP session with target ("ip:port" or "name:port").
// On success, reply is the reply to the end of DATA.
func (t *Transport) attempt(ctx context.Context, host, target string, env Envelope, useTLS bool) (reply string, e *Error, next bool) {
	timeout := t.timeout()
	key := poolKey(target, useTLS)
	if reply, e, next, ok := t.reuse(ctx, host, key, env, timeout); ok {
		return reply, e, next
	}
	d := net.Dialer{Timeout: timeout}
	if !t.AllowPrivate && t.RelayHost == "" {
		d.Control = publicOnly
	}
	conn, err := d.DialContext(ctx, "tcp", target)
	if errors.Is(err, errPrivateDestination) {
		// Not worth retrying: the destination is the recipient domain's
		// own choice. The next address or host may be public.
		return "", &Error{Enhanced: enhPrivateDest, Host: host,
			Message: "refused to deliver to " + host + " (" + target + "): a loopback, private or link-local address (delivery.allow_private_destinations)"}, true
	}
	if err != nil {
		msg := "cannot connect to " + host + " (" + target + "): " + netErrorMessage(err)
		return "", t.ctxError(ctx, "", localError("", enhConnection, msg, err)), true
	}
	// Cancelling ctx aborts whatever the session is blocked on.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	kept := false
	defer func() {
		if !kept {
			closeConn(conn, env.Lease != nil)
		}
	}()

	c := t.newClient(conn, timeout)
	wire := conn // what c writes to
	if err := c.Hello(t.hostname()); err != nil {
		return "", t.ctxError(ctx, host, preTransactionError(host, err)), true
	}

	if ok, _ := c.Extension("STARTTLS"); ok && useTLS {
		tlsConn, e := t.startTLS(ctx, conn, host, timeout)
		switch {
		case e == nil:
			wire = &greetedConn{Conn: tlsConn, pending: []byte("220 " + host + "\r\n")}
			c = t.newClient(wire, timeout)
			if err := c.Hello(t.hostname()); err != nil {
				return "", t.ctxError(ctx, host, preTransactionError(host, err)), true
			}
		case e.Code != 0 && !t.RequireTLS:
			// STARTTLS refused with a reply: the session is still
			// usable in plaintext.
		case e.Code != 0:
			quit(c, timeout)
			return "", e, true
		default:
			return "", t.ctxError(ctx, host, e), true
		}
	} else if t.RequireTLS {
		quit(c, timeout)
		return "", &Error{Temporary: true, Enhanced: enhNeedTLS, Message: "STARTTLS not offered, TLS required", Host: host}, true
	}

	s := &pooledSession{c: c, conn: conn, wire: wire}
	reply, err = t.transaction(s, env, timeout)
	if err != nil {
		e := t.ctxError(ctx, host, smtpReplyError(host, err))
		var se *smtp.SMTPError
		if errors.As(err, &se) && se.Code != 421 {
			quit(c, timeout) // the connection is still in step
		}
		return "", e, e.Code == 421
	}
	if stop() { // not cancelled meanwhile: keep the session for the next message
		kept = true
		if env.Lease != nil && env.Lease.attach() {
			s.lease = env.Lease // the destination counts the idle connection too
		}
		t.pool.put(key, s, time.Now())
	} else {
		quit(c, timeout)
	}
	return reply, nil, false
}

// errNoSMTPUTF8 bounces a message with a non-ASCII envelope address when
// the next hop does not offer SMTPUTF8: RFC 6531 §3.2 forbids sending it,
// and such an address has no ASCII form to fall back to.
var errNoSMTPUTF8 = &Error{Enhanced: enhNeedUTF8,
	Message: "a non-ASCII address needs SMTPUTF8, which the destination does not offer (RFC 6531)"}

// transaction sends MAIL, RCPT and DATA over s, and returns the reply to
// the end of DATA ("250 …", flattened and bounded).
func (t *Transport) transaction(s *pooledSession, env Envelope, timeout time.Duration) (string, error) {
	c := s.c
	opts := &smtp.MailOptions{Size: int64(len(env.Prefix) + len(env.Data))}
	if !isASCII(env.From) || !isASCII(env.To) {
		if ok, _ := c.Extension("SMTPUTF8"); !ok {
			return "", errNoSMTPUTF8
		}
		opts.UTF8 = true
	}
	if err := c.Mail(env.From, opts); err != nil {
		return "", err
	}
	if err := c.Rcpt(env.To, nil); err != nil {
		return "", err
	}
	w, err := c.Data()
	if err != nil {
		return "", err
	}
	// The client clears the deadline after each command; bound the
	// transfer of the message itself.
	s.conn.SetDeadline(time.Now().Add(timeout))
	rc := replyCloser{cmd: w}
	if err := writeData(s.wire, &rc, env.Prefix, env.Data); err != nil {
		return "", err
	}
	return rc.reply, nil
}

// replyCloser is the DATA writer whose Close keeps the server's reply.
type replyCloser struct {
	cmd   *smtp.DataCommand
	reply string
}

func (r *replyCloser) Write(p []byte) (int, error) { return r.cmd.Write(p) }

func (r *replyCloser) Close() error {
	resp, err := r.cmd.CloseWithResponse()
	if err != nil {
		return err
	}
	// CloseWithResponse reads a 250 or fails: the code is that.
	r.reply = "250 " + shortReply(resp.StatusText)
	return nil
}

// startTLS issues STARTTLS on the raw connection (the go-smtp client has no
// exported STARTTLS for an established session) and completes the handshake.
// A refusal has Code set; a failed handshake wraps errTLSHandshake.
func (t *Transport) startTLS(ctx context.Context, conn net.Conn, host string, timeout time.Duration) (*tls.Conn, *Error) {
	conn.SetDeadline(time.Now().Add(timeout))
	defer conn.SetDeadline(time.Time{})
	if _, err := conn.Write([]byte("STARTTLS\r\n")); err != nil {
		return nil, localError(host, enhBadConn, "STARTTLS: "+netErrorMessage(err), err)
	}
	// The server sends nothing after its reply until our ClientHello, so
	// this reader cannot swallow handshake bytes.
	code, msg, err := textproto.NewReader(bufio.NewReader(conn)).ReadResponse(220)
	if err != nil {
		if code == 0 {
			return nil, localError(host, enhBadConn, "STARTTLS: "+netErrorMessage(err), err)
		}
		return nil, &Error{
			Temporary: true,
			Code:      code,
			Enhanced:  enhNeedTLS,
			Message:   "STARTTLS refused: " + shortReply(msg),
			Host:      host,
			Err:       err,
		}
	}
	tlsConn := tls.Client(conn, t.tlsConfig(host))
	if err := tlsConn.HandshakeContext(ctx); err != nil {
		return nil, localError(host, enhBadConn, "STARTTLS handshake failed", errors.Join(errTLSHandshake, err))
	}
	return tlsConn, nil
}

func (t *Transport) tlsConfig(host string) *tls.Config {
	var cfg *tls.Config
	if t.TLSConfig != nil {
		cfg = t.TLSConfig.Clone()
	} else {
		cfg = &tls.Config{InsecureSkipVerify: true}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	return cfg
}

func (t *Transport) newClient(conn net.Conn, timeout time.Duration) *smtp.Client {
	c := smtp.NewClient(conn)
	c.CommandTimeout = timeout
	c.SubmissionTimeout = timeout
	return c
}

func (t *Transport) timeout() time.Duration {
	if t.Timeout > 0 {
		return t.Timeout
	}
	return defaultSMTPTimeout
}

func (t *Transport) hostname() string {
	if t.Hostname != "" {
		return t.Hostname
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "localhost"
}

// ctxError replaces e by a cancellation/deadline error when ctx is done (the
// session failed because its connection was closed under it).
func (t *Transport) ctxError(ctx context.Context, host string, e *Error) *Error {
	if err := ctx.Err(); err != nil {
		return localError(host, enhBadConn, netErrorMessage(err), err)
	}
	return e
}

// preTransactionError classifies a failure of the greeting, EHLO or the
// post-STARTTLS EHLO: always temporary (another host, or later, may do), the
// remote code kept.
func preTransactionError(host string, err error) *Error {
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		return localError(host, enhConnection, "no greeting: "+netErrorMessage(err), err)
	}
	e := smtpReplyError(host, err)
	e.Temporary = true
	e.Enhanced[0] = 4
	return e
}

// quit sends QUIT best-effort, waiting at most maxQuitTimeout; the caller
// closes the connection.
func quit(c *smtp.Client, timeout time.Duration) {
	c.CommandTimeout = min(timeout, maxQuitTimeout)
	c.Quit()
}

// greetedConn replays a synthetic 220 greeting before the connection's own
// data, so that a fresh go-smtp client can take over a session after
// STARTTLS (where the server sends no new greeting).
type greetedConn struct {
	net.Conn
	pending []byte
}

func (g *greetedConn) Read(p []byte) (int, error) {
	if len(g.pending) > 0 {
		n := copy(p, g.pending)
		g.pending = g.pending[n:]
		return n, nil
	}
	return g.Conn.Read(p)
}

// badLine reports an address that would break the command line.
func badLine(s string) bool {
	return strings.ContainsAny(s, "\r\n<>")
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
