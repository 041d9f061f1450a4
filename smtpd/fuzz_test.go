package smtpd

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/pigeonpost/pigeonpost/internal/testkit"
)

// authExchange runs the server side of one AUTH with responses, as go-smtp
// would after undoing the base64, and returns the session, whether the
// exchange ended and its error.
func authExchange(t *testing.T, pipe *fakePipeline, mech string, responses [][]byte) (*session, bool, error) {
	t.Helper()
	sess := &session{srv: New(pipe, Options{Logger: slog.New(slog.DiscardHandler)}), ip: "192.0.2.1"}
	server, err := sess.mechanism(mech) // Auth past its TLS check: there is no connection here
	if err != nil {
		t.Fatalf("Auth(%s): %v", mech, err)
	}
	for _, r := range responses {
		_, done, err := server.Next(r)
		if done || err != nil {
			return sess, done, err
		}
	}
	return sess, false, nil
}

// FuzzAuth feeds decoded SASL responses to the session's PLAIN and LOGIN
// servers (go-sasl's parser for PLAIN, ours for LOGIN) over the fake
// pipeline. Invariants: nothing panics; the exchange ends within the
// mechanism's steps; the pipeline is only ever asked about a secret without
// NUL, CR or LF; AUTH succeeds exactly when the secret is testKey, and then
// the session holds the key; a refusal is 535 5.7.8 (or, for a PLAIN
// response that is not three NUL-separated parts, 501 5.5.2); and (a, b) encoded as user and password by
// go-sasl's own clients round-trip: the pipeline is asked about exactly b.
func FuzzAuth(f *testing.F) {
	plain := func(id, user, pass string) []byte { return []byte(id + "\x00" + user + "\x00" + pass) }
	f.Add(false, true, plain("", "apikey", testKey), []byte(nil))
	f.Add(false, false, plain("apikey", "APIKEY", testKey), []byte{})
	f.Add(false, true, plain("", "apikey", testKey+"\r\nMAIL FROM:<x@y>"), []byte{})
	f.Add(false, true, plain("someone", "apikey", testKey), []byte{})
	f.Add(false, true, []byte("\x00\x00\x00"), []byte{})
	f.Add(false, true, []byte("apikey"), []byte(testKey))
	f.Add(true, true, []byte("apikey"), []byte(testKey))
	f.Add(true, false, []byte("ApiKey"), []byte(testKey))
	f.Add(true, true, []byte("apikey\x00"), []byte(testKey+"\x00"))
	f.Add(true, false, []byte(""), []byte("\r\n"))
	f.Fuzz(func(t *testing.T, login, initial bool, a, b []byte) {
		mech, steps := sasl.Plain, 2
		if login {
			mech, steps = sasl.Login, 3
		}
		responses := [][]byte{nil, a, b}
		if initial {
			responses = responses[1:]
		}
		pipe := newFakePipeline()
		sess, done, err := authExchange(t, pipe, mech, responses[:min(len(responses), steps)])
		if !done && err == nil {
			t.Fatalf("%s did not end after %q", mech, responses)
		}
		checkAsked(t, pipe)
		var se *smtp.SMTPError
		switch {
		case err == nil:
			if sess.key != fakeKey || sess.secret != testKey {
				t.Fatalf("accepted %q without the key", responses)
			}
		case errors.As(err, &se):
			malformedPlain := !login && se == replyMalformedPlain
			if !malformedPlain && (se.Code != 535 || se.EnhancedCode != (smtp.EnhancedCode{5, 7, 8})) {
				t.Fatalf("refused with %d %v", se.Code, se.EnhancedCode)
			}
		case login:
			t.Fatalf("LOGIN failed with %v (%T), not an SMTP reply", err, err)
		}
		if err != nil && sess.key != nil {
			t.Fatal("refused, yet the session holds a key")
		}

		// Round trip through go-sasl's clients.
		user, pass := string(a), string(b)
		var client sasl.Client
		if login {
			client = sasl.NewLoginClient(user, pass)
		} else if !strings.Contains(user, "\x00") && !strings.Contains(pass, "\x00") {
			client = sasl.NewPlainClient("", user, pass)
		} else {
			return // not encodable in PLAIN
		}
		pipe = newFakePipeline()
		sess = &session{srv: New(pipe, Options{Logger: slog.New(slog.DiscardHandler)}), ip: "192.0.2.1"}
		server, err := sess.mechanism(mech)
		if err != nil {
			t.Fatal(err)
		}
		_, response, err := client.Start()
		if err != nil {
			t.Fatal(err)
		}
		for range steps {
			var challenge []byte
			challenge, done, err = server.Next(response)
			if done || err != nil {
				break
			}
			if response, err = client.Next(challenge); err != nil {
				t.Fatalf("client: %v", err)
			}
		}
		if !done {
			t.Fatalf("%s round trip did not end: %v", mech, err)
		}
		want := strings.EqualFold(user, authUser) && pass == testKey
		if (err == nil) != want {
			t.Fatalf("%s round trip of %q/%q: err %v", mech, user, pass, err)
		}
		asked := pipe.asked()
		if strings.EqualFold(user, authUser) && !strings.ContainsAny(pass, "\x00\r\n") &&
			(len(asked) != 1 || asked[0] != pass) {
			t.Fatalf("%s round trip of %q/%q asked the pipeline about %q", mech, user, pass, asked)
		}
		checkAsked(t, pipe)
	})
}

func checkAsked(t *testing.T, pipe *fakePipeline) {
	t.Helper()
	for _, s := range pipe.asked() {
		if strings.ContainsAny(s, "\x00\r\n") {
			t.Fatalf("the pipeline was asked about %q", s)
		}
	}
}

var (
	replyLine = regexp.MustCompile(`^[2-5][0-9][0-9]([ -][^\x00-\x1f\x7f]*)?\r\n$`)
	// goSMTPEcho matches go-smtp's own replies that echo the client's
	// bytes as sent, a bare CR included: the answer to an unknown
	// four-byte command ("00<CR>0") and to HELO/EHLO ("Hello 0<CR>00"),
	// in conn.go, still so in v0.26.0. They reflect only the client's
	// own bytes back to it, and smtpd cannot filter them without hiding
	// the TLS state from go-smtp (a second EHLO does not even reach
	// NewSession), so the invariant tolerates them until go-smtp quotes
	// them. Both found by FuzzDialogue.
	goSMTPEcho   = regexp.MustCompile(`^(500 5\.5\.2 Syntax errors, [^\n]+ command unrecognized|250[ -](2\.0\.0 )?Hello [^\n]+)\r\n$`)
	enhancedCode = regexp.MustCompile(`^([0-9])[0-9][0-9][ -]([0-9])\.[0-9]{1,3}\.[0-9]{1,3}( |\r)`)
)

// FuzzDialogue plays the fuzzer's bytes, split into lines each sent with
// CRLF, as a client of the implicit-TLS listener of a server over the fake
// pipeline; {{auth}}, {{b64user}} and {{b64key}} become the good
// credentials so that the fuzzer reaches the states after AUTH. After the
// lines the client closes its side and reads every reply. Invariants: every
// reply line is well formed (three digits, then space or dash, text
// without control characters, CRLF); an
// enhanced code has the class of its reply (never 5xx with 4.x.x or the
// reverse); the pipeline is given a message only on a connection that was
// answered 235, with the authenticated key, and no CR or LF in the
// envelope; and the server stays up: a fresh connection gets 220.
func FuzzDialogue(f *testing.F) {
	for _, seed := range []string{
		"EHLO c\nAUTH PLAIN {{auth}}\nMAIL FROM:<" + testFrom + ">\nRCPT TO:<" + testRcpt + ">\nDATA\nSubject: x\n\nhi\n.\nQUIT\n",
		"EHLO c\nAUTH LOGIN\n{{b64user}}\n{{b64key}}\nMAIL FROM:<" + testFrom + "> SIZE=100\nRCPT TO:<" + testRcpt + ">\nBDAT 8 LAST\nSubject:\nRSET\n",
		"EHLO c\nAUTH PLAIN {{auth}}\nMAIL FROM:<" + testFrom + ">\nRCPT TO:<" + testRcpt + ">\nDATA\nSubject: smuggle\n\nx\r.\nMAIL FROM:<evil@evil.test>\n.\nNOOP\n",
		"EHLO c\nAUTH PLAIN {{auth}}\nMAIL FROM:<x@unverified.test>\nMAIL FROM:<" + testFrom + ">\nRCPT TO:<a\rb@example.test>\nRCPT TO:<not an address>\nDATA\n.\n",
		"HELO c\nAUTH PLAIN {{auth}}\nAUTH PLAIN !!!\nAUTH CRAM-MD5\nAUTH LOGIN =\n*\nSTARTTLS\nVRFY x\nHELP\nGET / HTTP/1.1\n",
		"EHLO c\nMAIL FROM:<" + testFrom + ">\nRCPT TO:<" + testRcpt + ">\nDATA\n",
		"EHLO c\nAUTH PLAIN {{auth}}\nMAIL FROM:<" + testFrom + "> BODY=8BITMIME SMTPUTF8\nRCPT TO:<ü@example.test>\nDATA\n",
	} {
		f.Add([]byte(seed))
	}
	s := startServer(f, func(o *Options) {
		o.MaxConnections = 100
		o.ReadTimeout, o.DataTimeout = 5*time.Second, 5*time.Second
		o.Logger = slog.New(slog.DiscardHandler)
	})
	vars := strings.NewReplacer(
		"{{auth}}", base64.StdEncoding.EncodeToString([]byte("\x00apikey\x00"+testKey)),
		"{{b64user}}", base64.StdEncoding.EncodeToString([]byte("apikey")),
		"{{b64key}}", base64.StdEncoding.EncodeToString([]byte(testKey)),
	)
	f.Fuzz(func(t *testing.T, script []byte) {
		if len(script) > 16<<10 {
			return
		}
		s.pipe.reset()
		var out bytes.Buffer
		for line := range bytes.SplitSeq(script, []byte("\n")) {
			out.WriteString(vars.Replace(string(bytes.TrimSuffix(line, []byte("\r")))))
			out.WriteString("\r\n")
		}

		conn, err := net.Dial("tcp", s.tlsAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(20 * time.Second)) // a hang fails the exec
		tc := tls.Client(conn, testkit.InsecureTLS())
		replies := make(chan []string, 1)
		go func() {
			var lines []string
			r := bufio.NewReader(tc)
			for {
				line, err := r.ReadString('\n')
				if line != "" {
					lines = append(lines, line)
				}
				if err != nil {
					replies <- lines
					return
				}
			}
		}()
		if _, err := tc.Write(out.Bytes()); err != nil && !errors.Is(err, io.EOF) && !isReset(err) {
			t.Fatalf("write: %v", err)
		}
		_ = tc.CloseWrite()
		lines := <-replies
		if len(lines) == 0 {
			t.Fatal("no reply at all")
		}

		authenticated := false
		for _, line := range lines {
			if !replyLine.MatchString(line) && !goSMTPEcho.MatchString(line) {
				t.Fatalf("malformed reply line %q", line)
			}
			if m := enhancedCode.FindStringSubmatch(line); m != nil && m[1] != m[2] {
				t.Fatalf("reply %q: enhanced class %s under basic class %s", line, m[2], m[1])
			}
			if strings.HasPrefix(line, "235 ") {
				authenticated = true
			}
		}
		if n := len(s.pipe.submissions()); n > 0 && !authenticated {
			t.Fatalf("%d submissions on a connection never answered 235", n)
		}
		s.pipe.checkBreaches(t)

		fresh, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer fresh.Close()
		_ = fresh.SetDeadline(time.Now().Add(10 * time.Second))
		greeting, err := bufio.NewReader(fresh).ReadString('\n')
		if err != nil || !strings.HasPrefix(greeting, "220 ") {
			t.Fatalf("fresh connection got %q, %v", greeting, err)
		}
	})
}

// isReset reports a write refused because the server has already hung up
// (after 421, or on a line too long), which is the server's right.
func isReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne)
}
