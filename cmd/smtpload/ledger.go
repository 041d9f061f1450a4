package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/pigeonpost/pigeonpost/internal/testkit/smtpsink"
)

// The ledgers answer "was every message answered 250 delivered, and how
// many twice?" across gateways that are killed mid-run (make scale). The
// load side (-ledger) tags each message with a unique id in idHeader and
// writes the ids answered 250; the sink side (-sink -ledger) appends the id
// of each message it receives; -ledger-check compares the two.

// idHeader carries a message's ledger id: <run id>.<sequence number>.
const idHeader = "X-Smtpload-Id"

// newRunID returns a random prefix for this run's ids, so that the ids of
// several runs delivered to one sink never meet.
func newRunID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func ledgerID(runID string, seq int64) string { return runID + "." + strconv.FormatInt(seq, 10) }

// writeLedger writes the ids of the acknowledged messages, in order.
func writeLedger(path, runID string, seqs []int64) error {
	slices.Sort(seqs)
	var b bytes.Buffer
	for _, s := range seqs {
		b.WriteString(ledgerID(runID, s))
		b.WriteByte('\n')
	}
	return writeFileAtomic(path, b.Bytes())
}

// ledgerCheck is the comparison of an acknowledged ledger with a delivered one.
type ledgerCheck struct {
	Acked     int // ids answered 250
	Delivered int // of those, delivered at least once
	Lost      int // answered 250, never delivered
	Dup       int // deliveries beyond the first of an id (of this run, acknowledged or not)
	Unacked   int // ids delivered that were never answered 250 (a gateway killed after storing, a 451 after the write): allowed
}

func (c ledgerCheck) String() string {
	return fmt.Sprintf("acked=%d delivered=%d lost=%d dup=%d unacked_delivered=%d", c.Acked, c.Delivered, c.Lost, c.Dup, c.Unacked)
}

// checkLedgers compares the acknowledged ids in ackedPath with the
// deliveries in deliveredPath, counting only the deliveries of the runs
// that ackedPath names (a sink may have served several runs).
func checkLedgers(ackedPath, deliveredPath string) (ledgerCheck, error) {
	var c ledgerCheck
	acked, err := readLines(ackedPath)
	if err != nil {
		return c, err
	}
	delivered, err := readLines(deliveredPath)
	if err != nil {
		return c, err
	}
	isAcked := make(map[string]bool, len(acked))
	runs := map[string]bool{}
	for _, id := range acked {
		isAcked[id] = true
		run, _, _ := strings.Cut(id, ".")
		runs[run] = true
	}
	seen := map[string]int{}
	for _, id := range delivered {
		if run, _, _ := strings.Cut(id, "."); runs[run] {
			seen[id]++
		}
	}
	c.Acked = len(isAcked)
	for id, n := range seen {
		if isAcked[id] {
			c.Delivered++
		} else {
			c.Unacked++
		}
		c.Dup += n - 1
	}
	c.Lost = c.Acked - c.Delivered
	return c, nil
}

func readLines(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(b)), nil
}

// ledgerSink is the sink of -sink -ledger: like the shared one in discard
// mode (it counts and keeps nothing), and it appends the idHeader of every
// message received to the ledger file. smtpsink has no hook per message in
// discard mode, hence this small server of its own. Plain SMTP only: it is
// the relay host of the gateways under test.
type ledgerSink struct {
	srv  *smtp.Server
	ln   net.Listener
	errc chan error

	conns, sessions, msgs, bytes, rcpts, dataErr atomic.Int64

	mu     sync.Mutex
	ledger *bufio.Writer
	file   *os.File
}

func startLedgerSink(addr, path string) (*ledgerSink, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		f.Close()
		return nil, err
	}
	s := &ledgerSink{ln: ln, errc: make(chan error, 1), file: f, ledger: bufio.NewWriter(f)}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		s.sessions.Add(1)
		return &ledgerSession{s: s}, nil
	}))
	s.srv.Domain = "sink.bench.test"
	s.srv.ReadTimeout = time.Minute
	s.srv.WriteTimeout = time.Minute
	s.srv.MaxMessageBytes = 64 << 20
	s.srv.MaxRecipients = 1000
	go func() { s.errc <- s.srv.Serve(countingLn{ln, &s.conns}) }()
	return s, nil
}

func (s *ledgerSink) Addr() string         { return s.ln.Addr().String() }
func (s *ledgerSink) Errors() <-chan error { return s.errc }

func (s *ledgerSink) Stats() smtpsink.Stats {
	return smtpsink.Stats{Connections: s.conns.Load(), Sessions: s.sessions.Load(), Messages: s.msgs.Load(),
		Bytes: s.bytes.Load(), Rcpts: s.rcpts.Load(), DataErrors: s.dataErr.Load()}
}

// Flush writes the ids received so far to the ledger file.
func (s *ledgerSink) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ledger.Flush()
}

func (s *ledgerSink) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if ferr := s.Flush(); ferr != nil && err == nil {
		err = ferr
	}
	if cerr := s.file.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}

// record counts a message and appends its id (before the message counts,
// so that a reader of the stats file never sees a message the ledger lacks
// after a flush).
func (s *ledgerSink) record(id string, n int64, rcpts int) {
	if id != "" {
		s.mu.Lock()
		s.ledger.WriteString(id)
		s.ledger.WriteByte('\n')
		s.mu.Unlock()
	}
	s.msgs.Add(1)
	s.bytes.Add(n)
	s.rcpts.Add(int64(rcpts))
}

type countingLn struct {
	net.Listener
	n *atomic.Int64
}

func (l countingLn) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

type ledgerSession struct {
	s     *ledgerSink
	rcpts int
}

func (ss *ledgerSession) Mail(string, *smtp.MailOptions) error { ss.rcpts = 0; return nil }
func (ss *ledgerSession) Rcpt(string, *smtp.RcptOptions) error { ss.rcpts++; return nil }
func (ss *ledgerSession) Reset()                               { ss.rcpts = 0 }
func (ss *ledgerSession) Logout() error                        { return nil }

func (ss *ledgerSession) Data(r io.Reader) error {
	id, n, err := readLedgerID(r)
	if err != nil {
		ss.s.dataErr.Add(1)
		return err
	}
	ss.s.record(id, n, ss.rcpts)
	return nil
}

// readLedgerID reads a whole message and returns the value of its idHeader
// ("" without one) and its size.
func readLedgerID(r io.Reader) (string, int64, error) {
	br := bufio.NewReaderSize(r, 4096)
	var n int64
	id := ""
	prefix := strings.ToLower(idHeader) + ":"
	for {
		line, err := br.ReadSlice('\n')
		n += int64(len(line))
		if errors.Is(err, bufio.ErrBufferFull) {
			// A header line longer than the buffer is not ours: skip the rest of it.
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = br.ReadSlice('\n')
				n += int64(len(line))
			}
			if err != nil {
				break
			}
			continue
		}
		if err != nil {
			if err == io.EOF {
				return id, n, nil
			}
			return id, n, err
		}
		t := bytes.TrimRight(line, "\r\n")
		if len(t) == 0 {
			break // end of the header
		}
		if len(t) > len(prefix) && strings.EqualFold(string(t[:len(prefix)]), prefix) {
			id = string(bytes.TrimSpace(t[len(prefix):]))
		}
	}
	m, err := io.Copy(io.Discard, br)
	return id, n + m, err
}
