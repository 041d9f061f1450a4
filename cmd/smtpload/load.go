package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/smtp"
	"net/textproto"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// The client side follows /work/shared/bench/loadgen step for step (same
// commands, same timing points, same bounds), so the figures of the two tools
// can be put side by side. It uses net/smtp rather than go-smtp's client
// because go-smtp v0.25.1's Client.Reset sends a fresh EHLO before the next
// MAIL, which would add a round trip per message; net/smtp sends a bare RSET.

// worker holds what one connection slot measured. Only its goroutine writes it.
type worker struct {
	dataLat  []time.Duration // final "." -> 250 reply (accepted messages)
	txnLat   []time.Duration // MAIL -> 250 reply after "." (accepted messages)
	setupLat []time.Duration // dial -> ready to send MAIL (successful setups)
	connLat  []time.Duration // TCP connect + greeting + EHLO (+ TLS handshake if implicit)
	tlsLat   []time.Duration // STARTTLS -> handshake -> EHLO reply
	authLat  []time.Duration // AUTH PLAIN -> 235
	rsetLat  []time.Duration // RSET -> 250 (between messages on one connection)
	quitLat  []time.Duration // QUIT -> 221
	codes    map[string]int  // reply code to the final "."
	stageErr map[string]int  // e.g. "rcpt 451", "setup-dial conn-refused"
	samples  []string
	accepted int
	failed   int
	conns    int
	setupErr int
	bytes    int64
	acked    []int64 // with -ledger: the sequence numbers answered 250
}

func newWorker() *worker {
	return &worker{codes: map[string]int{}, stageErr: map[string]int{}}
}

func (w *worker) errf(stage string, err error) {
	w.stageErr[stage+" "+classify(err)]++
	if len(w.samples) < 5 {
		w.samples = append(w.samples, stage+": "+err.Error())
	}
}

// merge adds o's figures to w.
func (w *worker) merge(o *worker) {
	w.dataLat = append(w.dataLat, o.dataLat...)
	w.txnLat = append(w.txnLat, o.txnLat...)
	w.setupLat = append(w.setupLat, o.setupLat...)
	w.connLat = append(w.connLat, o.connLat...)
	w.tlsLat = append(w.tlsLat, o.tlsLat...)
	w.authLat = append(w.authLat, o.authLat...)
	w.rsetLat = append(w.rsetLat, o.rsetLat...)
	w.quitLat = append(w.quitLat, o.quitLat...)
	for k, v := range o.codes {
		w.codes[k] += v
	}
	for k, v := range o.stageErr {
		w.stageErr[k] += v
	}
	for _, s := range o.samples {
		if len(w.samples) < 10 {
			w.samples = append(w.samples, s)
		}
	}
	w.accepted += o.accepted
	w.failed += o.failed
	w.conns += o.conns
	w.setupErr += o.setupErr
	w.bytes += o.bytes
	w.acked = append(w.acked, o.acked...)
}

// classify turns an error into a short bucket name: the SMTP code, or a
// network condition.
func classify(err error) string {
	var te *textproto.Error
	if errors.As(err, &te) {
		return strconv.Itoa(te.Code)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	s := err.Error()
	switch {
	case strings.Contains(s, "connection refused"):
		return "conn-refused"
	case strings.Contains(s, "connection reset"):
		return "conn-reset"
	case strings.Contains(s, "broken pipe"):
		return "broken-pipe"
	case errors.Is(err, io.EOF), strings.Contains(s, "EOF"):
		return "eof"
	case strings.Contains(s, "tls:"):
		return "tls"
	}
	if len(s) > 40 {
		s = s[:40]
	}
	return "other(" + s + ")"
}

func isProtoErr(err error) bool {
	var te *textproto.Error
	return errors.As(err, &te)
}

type runner struct {
	cfg       *config
	tlsConf   *tls.Config
	body      []byte
	rcpts     []string
	next      atomic.Int64
	softStop  time.Time
	hardStop  time.Time
	timedOut  atomic.Bool
	pid       int
	runID     string // with -ledger: the prefix of this run's message ids
	setupFail atomic.Int64
	conns     atomic.Int64 // connections begun: the next one goes to addrs[conns % len(addrs)]
}

// claim takes the next message number; false when -n or -duration is reached.
func (r *runner) claim() (int64, bool) {
	if time.Now().After(r.softStop) {
		r.timedOut.Store(true)
		return 0, false
	}
	n := r.next.Add(1) - 1
	if n >= int64(r.cfg.Total) {
		return 0, false
	}
	return n, true
}

// deadline is the socket deadline for the next command: -timeout from now,
// never past the hard stop.
func (r *runner) deadline() time.Time {
	d := time.Now().Add(r.cfg.timeout)
	if d.After(r.hardStop) {
		return r.hardStop
	}
	return d
}

// nextAddr returns the target of the next connection: the -addr list in
// turn, so that the load is spread evenly over several servers.
func (r *runner) nextAddr() string {
	if len(r.cfg.addrs) == 0 {
		return r.cfg.Addr
	}
	n := r.conns.Add(1) - 1
	return r.cfg.addrs[n%int64(len(r.cfg.addrs))]
}

type session struct {
	c    *smtp.Client
	conn net.Conn
}

func (s *session) arm(r *runner) { _ = s.conn.SetDeadline(r.deadline()) }

// setup connects and makes the session ready for MAIL: greeting, EHLO,
// STARTTLS and EHLO again, AUTH PLAIN.
func (r *runner) setup(w *worker) (*session, error) {
	t0 := time.Now()
	addr := r.nextAddr()
	d := net.Dialer{Timeout: r.cfg.timeout, Deadline: r.hardStop}
	var conn net.Conn
	var err error
	if r.cfg.ImplicitTLS {
		conn, err = tls.DialWithDialer(&d, "tcp", addr, r.tlsConf)
	} else {
		conn, err = d.Dial("tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	s := &session{conn: conn}
	s.arm(r)
	host, _, _ := net.SplitHostPort(addr)
	c, err := smtp.NewClient(conn, host) // reads the 220 greeting
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("greeting: %w", err)
	}
	s.c = c
	if err := c.Hello(r.cfg.Helo); err != nil {
		c.Close()
		return nil, fmt.Errorf("helo: %w", err)
	}
	t1 := time.Now()
	w.connLat = append(w.connLat, t1.Sub(t0))
	if r.cfg.StartTLS {
		s.arm(r)
		if ok, _ := c.Extension("STARTTLS"); !ok {
			c.Close()
			return nil, errors.New("starttls: not advertised")
		}
		if err := c.StartTLS(r.tlsConf); err != nil { // STARTTLS, handshake, EHLO
			c.Close()
			return nil, fmt.Errorf("starttls: %w", err)
		}
		t2 := time.Now()
		w.tlsLat = append(w.tlsLat, t2.Sub(t1))
		t1 = t2
	}
	if r.cfg.User != "" {
		s.arm(r)
		auth := smtp.PlainAuth("", r.cfg.User, r.cfg.pass, host)
		if err := c.Auth(auth); err != nil {
			c.Close()
			return nil, fmt.Errorf("auth: %w", err)
		}
		w.authLat = append(w.authLat, time.Since(t1))
	}
	w.setupLat = append(w.setupLat, time.Since(t0))
	w.conns++
	return s, nil
}

// send transmits one message. broken reports that the connection can't be
// reused.
func (r *runner) send(w *worker, s *session, seq int64) (broken bool) {
	c := s.c
	fail := func(stage string, err error) bool {
		w.failed++
		w.errf(stage, err)
		return !isProtoErr(err)
	}
	t0 := time.Now()
	s.arm(r)
	if err := c.Mail(r.cfg.From); err != nil {
		return fail("mail", err)
	}
	okRcpt := 0
	for _, rc := range r.rcpts {
		s.arm(r)
		if err := c.Rcpt(rc); err != nil {
			if !isProtoErr(err) {
				return fail("rcpt", err)
			}
			w.errf("rcpt", err)
			continue
		}
		okRcpt++
	}
	if okRcpt == 0 {
		w.failed++
		return false
	}
	s.arm(r)
	wc, err := c.Data()
	if err != nil {
		return fail("data", err)
	}
	hdr := header(r.cfg, seq, r.pid, r.runID, r.rcpts)
	if _, err := wc.Write(hdr); err != nil {
		return fail("body", err)
	}
	if _, err := wc.Write(r.body); err != nil {
		return fail("body", err)
	}
	s.arm(r)
	t1 := time.Now()
	err = wc.Close() // writes the remaining buffered data and ".", waits for the reply
	t2 := time.Now()
	if err != nil {
		var te *textproto.Error
		if errors.As(err, &te) {
			w.codes[strconv.Itoa(te.Code)]++
		}
		return fail("dot", err)
	}
	w.codes["250"]++
	w.accepted++
	if r.runID != "" {
		w.acked = append(w.acked, seq)
	}
	w.bytes += int64(len(hdr) + len(r.body))
	w.dataLat = append(w.dataLat, t2.Sub(t1))
	w.txnLat = append(w.txnLat, t2.Sub(t0))
	return false
}

// work is one connection slot: it opens connections and sends up to
// -per-conn messages on each until no message is left to claim.
func (r *runner) work(w *worker) {
	consecutiveSetupFail := 0
	for {
		seq, ok := r.claim()
		if !ok {
			return
		}
		s, err := r.setup(w)
		if err != nil {
			// The claimed message counts as failed, so failures stay bounded by -n.
			w.failed++
			w.setupErr++
			stage, _, _ := strings.Cut(err.Error(), ":")
			w.errf("setup-"+stage, err)
			consecutiveSetupFail++
			if r.setupFail.Add(1) > int64(10*r.cfg.Conns+100) {
				return // the server is clearly down; stop hammering it
			}
			time.Sleep(time.Duration(min(consecutiveSetupFail, 10)) * 20 * time.Millisecond)
			continue
		}
		consecutiveSetupFail = 0
		sent := 0
		for {
			if sent > 0 {
				s.arm(r)
				t := time.Now()
				if err := s.c.Reset(); err != nil {
					w.errf("rset", err)
					break
				}
				w.rsetLat = append(w.rsetLat, time.Since(t))
			}
			broken := r.send(w, s, seq)
			sent++
			if broken || sent >= r.cfg.PerConn {
				break
			}
			if seq, ok = r.claim(); !ok {
				break
			}
		}
		s.arm(r)
		t := time.Now()
		if err := s.c.Quit(); err != nil {
			s.c.Close()
		} else {
			w.quitLat = append(w.quitLat, time.Since(t))
		}
	}
}
