package smtpd

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
)

// TestSMTPDialogs replays the conversations in testdata/smtp/*.dialog
// against the real server (chasquid's transcript tests). Lines:
//
//	C: text      send text + CRLF
//	W: text      send text as is, with \r and \n escapes (pipelining, smuggling)
//	S: regexp    the next reply's last line must match
//	TLS          start TLS on the connection (after the server's 220 to STARTTLS)
//
// {{from}}, {{to}}, {{auth}} (PLAIN, good key), {{badauth}}, {{b64user}} and
// {{b64key}} are replaced. At the end the pipeline must have been given
// exactly the messages the dialogs had queued, from {{from}} to {{to}} only,
// each with CRLF line endings only.
func TestSMTPDialogs(t *testing.T) {
	s := startServer(t)
	vars := strings.NewReplacer(
		"{{from}}", testFrom, "{{to}}", testRcpt,
		"{{auth}}", base64.StdEncoding.EncodeToString([]byte("\x00apikey\x00"+testKey)),
		"{{badauth}}", base64.StdEncoding.EncodeToString([]byte("\x00apikey\x00sp_live_wrongwrongwrongwrong")),
		"{{b64user}}", base64.StdEncoding.EncodeToString([]byte("apikey")),
		"{{b64key}}", base64.StdEncoding.EncodeToString([]byte(testKey)),
	)
	files, err := filepath.Glob(filepath.Join("testdata", "smtp", "*.dialog"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no dialogs: %v", err)
	}
	queued := 0
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			queued += replayDialog(t, s.addr, f, vars)
		})
	}
	subs := s.pipe.submissions()
	if len(subs) != queued {
		t.Errorf("the pipeline got %d messages, the dialogs queued %d", len(subs), queued)
	}
	for _, sub := range subs {
		if len(sub.Recipients) != 1 || sub.Recipients[0] != testRcpt || sub.EnvelopeFrom != testFrom {
			t.Errorf("unexpected submission %s → %v", sub.EnvelopeFrom, sub.Recipients)
		}
		if i := bareLineEnding(sub.Message); i >= 0 {
			t.Errorf("bare CR or LF at %d in %q", i, sub.Message)
		}
		if bytes.Contains(sub.Message, []byte("Subject: smuggle")) &&
			!bytes.Contains(sub.Message, []byte("x\r\n.\r\nMAIL FROM:<evil@evil.test>\r\n")) {
			t.Errorf("the smuggled text should stay inside the one message body: %q", sub.Message)
		}
	}
	s.pipe.checkBreaches(t)
}

// bareLineEnding returns the index of the first CR not followed by LF or LF
// not preceded by CR in b, or -1.
func bareLineEnding(b []byte) int {
	for i, c := range b {
		if (c == '\n' && (i == 0 || b[i-1] != '\r')) || (c == '\r' && (i+1 == len(b) || b[i+1] != '\n')) {
			return i
		}
	}
	return -1
}

// replayDialog runs one dialog and returns how many messages it queued.
func replayDialog(t *testing.T, addr, file string, vars *strings.Replacer) int {
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { conn.Close() }()
	r := bufio.NewReader(conn)
	queued := 0
	unescape := strings.NewReplacer(`\r`, "\r", `\n`, "\n")
	for n, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		verb, arg, _ := strings.Cut(line, ": ")
		arg = vars.Replace(arg)
		switch verb {
		case "C":
			if _, err := conn.Write([]byte(arg + "\r\n")); err != nil {
				t.Fatalf("line %d: %v", n+1, err)
			}
		case "W":
			if _, err := conn.Write([]byte(unescape.Replace(arg))); err != nil {
				t.Fatalf("line %d: %v", n+1, err)
			}
		case "S":
			reply := readReply(t, r)
			if !regexp.MustCompile(arg).MatchString(reply) {
				t.Fatalf("line %d: reply %q does not match %q", n+1, reply, arg)
			}
			if strings.Contains(reply, "queued as em_") {
				queued++
			}
		case "TLS":
			tc := tls.Client(conn, testkit.InsecureTLS())
			if err := tc.Handshake(); err != nil {
				t.Fatalf("line %d: %v", n+1, err)
			}
			conn, r = tc, bufio.NewReader(tc)
		default:
			t.Fatalf("line %d: unknown verb %q", n+1, verb)
		}
	}
	return queued
}

// readReply reads a (multi-line) reply and returns its last line.
func readReply(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading reply: %v", err)
		}
		line = strings.TrimRight(line, "\r\n")
		if len(line) < 4 || line[3] != '-' {
			return line
		}
	}
}
