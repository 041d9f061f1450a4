package main

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
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
// {{b64key}} are replaced. At the end every message at the destination must
// be one the dialogs had queued, to {{to}} only.
func TestSMTPDialogs(t *testing.T) {
	s := startStack(t)
	from, to := "hello@"+senderDomain, "user@"+rcptDomain
	vars := strings.NewReplacer(
		"{{from}}", from, "{{to}}", to,
		"{{auth}}", base64.StdEncoding.EncodeToString([]byte("\x00apikey\x00"+liveKey)),
		"{{badauth}}", base64.StdEncoding.EncodeToString([]byte("\x00apikey\x00sp_live_wrongwrongwrongwrong")),
		"{{b64user}}", base64.StdEncoding.EncodeToString([]byte("apikey")),
		"{{b64key}}", base64.StdEncoding.EncodeToString([]byte(liveKey)),
	)
	files, err := filepath.Glob(filepath.Join("..", "..", "testdata", "smtp", "*.dialog"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no dialogs: %v", err)
	}
	queued := 0
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			queued += replayDialog(t, s.addrs.SMTP, f, vars)
		})
	}
	got := s.sink.Wait(t, queued, 20*time.Second)
	time.Sleep(200 * time.Millisecond)
	if n := len(s.sink.Messages()); n != queued {
		t.Errorf("destination got %d messages, the dialogs queued %d", n, queued)
	}
	for _, m := range got {
		if len(m.To) != 1 || m.To[0] != to || m.From != from {
			t.Errorf("unexpected delivery %s → %v", m.From, m.To)
		}
	}
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
			tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true})
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
