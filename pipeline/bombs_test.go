package pipeline

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/pigeonpost/pigeonpost/pipeline/store"
	"github.com/pigeonpost/pigeonpost/tracking"
)

// MIME bombs (S11) as a submission meets them: parseMessage reads the top
// header only, and refuses one of more than maxHeaderLines lines (550
// 5.6.0); what is below it is the tracking rewriter's, which stops at its
// limits and sends the rest as it came. Each case is submitted tracked,
// through parseMessage and Service.rewrite, and its body comes out byte for
// byte, with a warning naming the limit, in bounded memory.
func TestMIMEBombsPassThroughUntouched(t *testing.T) {
	const top = "From: a@acme.test\r\nTo: b@x.test\r\nSubject: bomb\r\n"
	link := "Content-Type: text/html\r\n\r\n<a href=\"https://e.test/\">x</a>\r\n"
	var nested, parts strings.Builder
	nested.WriteString(top + "Content-Type: multipart/mixed; boundary=b0\r\n\r\n")
	for i := 1; i < 150; i++ {
		fmt.Fprintf(&nested, "--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n", i-1, i)
	}
	nested.WriteString("--b149\r\n" + link)
	for i := 149; i >= 0; i-- {
		fmt.Fprintf(&nested, "--b%d--\r\n", i)
	}
	parts.WriteString(top + "Content-Type: multipart/mixed; boundary=b\r\n\r\n")
	pad := "X-Pad: " + strings.Repeat("p", 90) + "\r\n"
	for range 100_000 {
		parts.WriteString("--b\r\n" + pad + "\r\n")
	}
	parts.WriteString("--b\r\n" + link + "--b--\r\n")
	long := strings.Repeat("B", 100)

	for _, c := range []struct{ name, raw, warn string }{
		{"150 nested multiparts", nested.String(), "multipart nested deeper than 50 levels"},
		{"100,000 empty parts in 10 MB", parts.String(), "message has more than 1000 parts"},
		{"a part of 20,000 header lines", top + "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n" +
			strings.Repeat("X-H: v\r\n", 20_000) + link + "--b--\r\n", "header of more than 10000 lines"},
		{"no closing boundary", top + "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n" + link, "malformed multipart structure"},
		{"a 100-character boundary, unclosed", top + "Content-Type: multipart/mixed; boundary=" + long + "\r\n\r\n--" + long + "\r\n" + link,
			"malformed multipart structure"},
		{"invalid base64", top + "Content-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!*\r\n", "invalid base64"},
		{"a quoted-printable line of 1,000,000 characters", top + "Content-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
			strings.Repeat("a", 1_000_000) + "<a href=\"https://e.test/\">x</a>\r\n", "invalid quoted-printable"},
	} {
		t.Run(c.name, func(t *testing.T) {
			raw := []byte(c.raw)
			body := raw[headerEnd(raw):]
			s := &Service{opt: Options{PublicURL: "https://t.gw.test"}, signer: tracking.NewSigner([]byte("secret"))}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			m, err := parseForTest(c.raw)
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			e := &store.Email{ID: "em_bomb", AccountID: "acct_a", TrackOpens: true, TrackClicks: true}
			out, res, err := s.rewrite(e, m.bytes(), trackPlan{})
			runtime.ReadMemStats(&after)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasSuffix(out, body) || len(out)-len(body) != headerEnd(out) || res.Changed || len(res.Links) > 0 {
				t.Errorf("the body was changed (changed %v, links %q)", res.Changed, res.Links)
			}
			if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], c.warn) {
				t.Errorf("warnings %q, want one saying %q", res.Warnings, c.warn)
			}
			if alloc, limit := after.TotalAlloc-before.TotalAlloc, uint64(4*len(raw)+8<<20); alloc > limit {
				t.Errorf("allocated %d MB for a %d KB message (limit %d MB)", alloc>>20, len(raw)>>10, limit>>20)
			}
		})
	}
}

// A header section of more than maxHeaderLines lines is refused with 550
// 5.6.0 naming the limit, folded lines counted as the fields are; one of
// maxHeaderLines lines is read.
func TestParseMessageHeaderLines(t *testing.T) {
	for name, header := range map[string]string{
		"20,000 fields":             strings.Repeat("X-H: v\r\n", 20_000),
		"one field of 20,000 lines": "X-H: v" + strings.Repeat("\r\n v", 20_000) + "\r\n",
		"10,001 lines":              strings.Repeat("X-H: v\r\n", maxHeaderLines),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parseForTest("From: a@acme.test\r\n" + header + "\r\nbody\r\n")
			if err == nil {
				t.Fatal("accepted")
			}
			if e := AsError(err); e.SMTPCode != 550 || e.Enhanced != [3]int{5, 6, 0} || e.Message != "header section exceeds 10000 lines" {
				t.Errorf("got %d %v %q", e.SMTPCode, e.Enhanced, e.Message)
			}
		})
	}
	if _, err := parseForTest("From: a@acme.test\r\n" + strings.Repeat("X-H: v\r\n", maxHeaderLines-1) + "\r\nbody\r\n"); err != nil {
		t.Errorf("%d lines: %v", maxHeaderLines, err)
	}
}
