package smtpd

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/pigeonpost/pigeonpost/internal/membudget"
	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// The smtpd tests run the real server on loopback, with real TLS, over
// fakePipeline: no Redis, nothing skipped. What needs the real pipeline
// (delivery, DKIM, Redis going away) is tested in cmd/pigeonpost.

const (
	testKey    = "sp_test_smtpdfakepipelinekey00001"
	testDomain = "acme.test"
	testFrom   = "sender@" + testDomain
	testRcpt   = "rcpt@example.test"
	maxBytes   = 1 << 20
)

// stage is where fakePipeline can be told to fail.
type stage string

const (
	atAuth   stage = "Authenticate"
	atSender stage = "CheckSender"
	atSubmit stage = "Submit"
)

// errPanic, given to failAt, makes the stage panic instead of returning.
var errPanic = errors.New("fake pipeline: told to panic")

// fakePipeline stands in for *pipeline.Service: one key (testKey), one
// verified domain (testDomain), and on demand a failure at any stage. It
// records every call, and every submission that breaks what smtpd promises
// the pipeline (an authenticated key, no CR or LF in the envelope).
type fakePipeline struct {
	mu       sync.Mutex
	fail     map[stage]error
	secrets  []string // what Authenticate was asked
	authIPs  []string // the client addresses AuthenticateFrom was given
	senders  []string
	subs     []pipeline.Submission
	admitted [][]string     // the recipients of each BeginAdmission
	ids      map[string]int // queued id → index in subs
	breaches []string
	seq      uint64
}

// fakeKey is the only key: Submit checks that smtpd passes it, which it
// can only have from a successful Authenticate.
var fakeKey = &store.Key{ID: "key_fake", AccountID: "acct_fake", Mode: "live", Permission: "full"}

var _ Pipeline = (*fakePipeline)(nil)

func newFakePipeline() *fakePipeline {
	return &fakePipeline{fail: map[stage]error{}, ids: map[string]int{}}
}

// failAt makes stage return err from now on (errPanic: panic); nil heals it.
func (f *fakePipeline) failAt(s stage, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		delete(f.fail, s)
		return
	}
	f.fail[s] = err
}

// failure is called with f.mu held.
func (f *fakePipeline) failure(s stage) error {
	err := f.fail[s]
	if err == errPanic {
		panic("fake pipeline: " + string(s) + " panicked")
	}
	return err
}

func (f *fakePipeline) AuthenticateFrom(ctx context.Context, secret, ip string) (*store.Key, error) {
	f.mu.Lock()
	f.authIPs = append(f.authIPs, ip)
	f.mu.Unlock()
	return f.Authenticate(ctx, secret)
}

func (f *fakePipeline) Authenticate(_ context.Context, secret string) (*store.Key, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.secrets = append(f.secrets, secret)
	if err := f.failure(atAuth); err != nil {
		return nil, err
	}
	if secret != testKey {
		return nil, pipeline.ErrAuthFailed
	}
	return fakeKey, nil
}

func (f *fakePipeline) CheckSender(_ context.Context, k *store.Key, addr string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.senders = append(f.senders, addr)
	if k != fakeKey {
		f.breaches = append(f.breaches, "CheckSender without an authenticated key")
	}
	if err := f.failure(atSender); err != nil {
		return err
	}
	a, err := pipeline.ParseAddress(addr)
	if err != nil {
		return err
	}
	if !strings.EqualFold(a[strings.LastIndexByte(a, '@')+1:], testDomain) {
		return pipeline.ErrUnverifiedDomain
	}
	return nil
}

// CheckRecipient is the pipeline's rule as smtpd relies on it: a mailbox,
// not at an address literal.
func (f *fakePipeline) CheckRecipient(addr string) error {
	if _, err := pipeline.ParseAddress(addr); err != nil {
		return err
	}
	if strings.HasPrefix(pipeline.DomainOf(addr), "[") {
		return pipeline.ErrBadDestination
	}
	return nil
}

// BeginAdmission records the recipients; its Admission is nil (none),
// which Submit and Release take as no admission.
func (f *fakePipeline) BeginAdmission(_ context.Context, k *store.Key, rcpts []string) *pipeline.Admission {
	f.mu.Lock()
	defer f.mu.Unlock()
	if k != fakeKey {
		f.breaches = append(f.breaches, "BeginAdmission without an authenticated key")
	}
	f.admitted = append(f.admitted, append([]string(nil), rcpts...))
	return nil
}

func (f *fakePipeline) Submit(_ context.Context, sub pipeline.Submission) (*pipeline.Receipt, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if sub.Key != fakeKey {
		f.breaches = append(f.breaches, "Submit without an authenticated key")
	}
	for _, a := range append([]string{sub.EnvelopeFrom}, sub.Recipients...) {
		if strings.ContainsAny(a, "\r\n") {
			f.breaches = append(f.breaches, "CR or LF in the envelope: "+a)
		}
	}
	sub.Message = bytes.Clone(sub.Message)
	sub.Recipients = append([]string(nil), sub.Recipients...)
	f.subs = append(f.subs, sub)
	if err := f.failure(atSubmit); err != nil {
		return nil, err
	}
	r := &pipeline.Receipt{Status: "queued"}
	for range sub.Recipients {
		f.seq++
		var b [16]byte
		binary.BigEndian.PutUint64(b[8:], f.seq)
		id := "em_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
		f.ids[id] = len(f.subs) - 1
		r.IDs = append(r.IDs, id)
	}
	return r, nil
}

// asked returns the secrets Authenticate was called with.
func (f *fakePipeline) asked() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.secrets...)
}

// askedFrom returns the client addresses AuthenticateFrom was given.
func (f *fakePipeline) askedFrom() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.authIPs...)
}

// admissions returns the recipients BeginAdmission was called with.
func (f *fakePipeline) admissions() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]string(nil), f.admitted...)
}

// submissions returns what Submit was called with, failed calls included.
func (f *fakePipeline) submissions() []pipeline.Submission {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]pipeline.Submission(nil), f.subs...)
}

// stored returns the message queued under id.
func (f *fakePipeline) stored(id string) ([]byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i, ok := f.ids[id]
	if !ok {
		return nil, false
	}
	return f.subs[i].Message, true
}

// reset forgets the calls recorded so far and heals every stage.
func (f *fakePipeline) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = map[stage]error{}
	f.secrets, f.senders, f.subs, f.breaches = nil, nil, nil, nil
	f.ids = map[string]int{}
}

func (f *fakePipeline) checkBreaches(t testing.TB) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range f.breaches {
		t.Error(b)
	}
}

// testServer is smtpd over a fakePipeline, serving STARTTLS on addr and
// implicit TLS on tlsAddr.
type testServer struct {
	addr, tlsAddr string
	pipe          *fakePipeline
	srv           *Server
	budget        *membudget.Budget
	logs          *syncBuffer
}

// startServer serves on 127.0.0.1 with a budget whose largest need is the
// cost of a message of maxBytes, and which holds exactly one such message.
// mutate may change the options before the server is made.
func startServer(t testing.TB, mutate ...func(*Options)) *testServer {
	t.Helper()
	cert, err := testkit.SelfSignedCert("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{
		pipe:   newFakePipeline(),
		budget: membudget.New(pipeline.MessageCost(maxBytes), pipeline.MessageCost(maxBytes), 0),
		logs:   &syncBuffer{},
	}
	opt := Options{
		Hostname:        "gw.test",
		MaxMessageBytes: maxBytes,
		MaxRecipients:   10,
		MaxConnections:  10,
		ReadTimeout:     30 * time.Second,
		WriteTimeout:    30 * time.Second,
		DataTimeout:     time.Minute,
		TLSConfig:       &tls.Config{Certificates: []tls.Certificate{cert}},
		Logger:          slog.New(slog.NewTextHandler(s.logs, nil)),
		Budget:          s.budget,
	}
	for _, m := range mutate {
		m(&opt)
	}
	s.srv = New(s.pipe, opt)
	var wg sync.WaitGroup
	for _, serve := range []struct {
		addr *string
		fn   func(net.Listener) error
	}{{&s.addr, s.srv.Serve}, {&s.tlsAddr, s.srv.ServeTLS}} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		*serve.addr = ln.Addr().String()
		wg.Go(func() { _ = serve.fn(ln) })
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.srv.Shutdown(ctx)
		wg.Wait()
	})
	return s
}

// Clients, layered by protocol state (go-smtp's server_test.go): greeted
// (after EHLO, no TLS), tls (after STARTTLS and EHLO again) and client
// (authenticated with testKey, ready for MAIL).

func (s *testServer) greeted(t testing.TB) *smtp.Client {
	t.Helper()
	return testkit.DialSMTP(t, s.addr, testkit.SMTPGreeted, "")
}

func (s *testServer) tlsClient(t testing.TB) *smtp.Client {
	t.Helper()
	return testkit.DialSMTP(t, s.addr, testkit.SMTPStartTLS, "")
}

func (s *testServer) client(t testing.TB) *smtp.Client {
	t.Helper()
	return testkit.DialSMTP(t, s.addr, testkit.SMTPStartTLS, testKey)
}

// checkStored checks that the message queued under id is msg, byte for byte.
func (s *testServer) checkStored(t *testing.T, id string, msg []byte) {
	t.Helper()
	body, ok := s.pipe.stored(id)
	if !ok {
		t.Fatalf("nothing queued as %s", id)
	}
	if !bytes.Equal(body, msg) {
		t.Errorf("stored %d bytes, sent %d; they differ", len(body), len(msg))
	}
}

// syncBuffer collects the server's log lines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
