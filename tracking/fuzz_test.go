package tracking

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// FuzzRewrite feeds arbitrary bytes to Rewrite, both as a whole message and
// as the HTML of a single-part message, and checks the invariants: no
// panic, no error (the I/O cannot fail here), output equal to input when
// nothing is enabled or nothing changed, output that parses whenever the
// input did, non-HTML parts untouched, and HTML changed only by link
// rewriting and the pixel. The seeds are the golden messages and the MIME
// bombs of bombs_test.go.
func FuzzRewrite(f *testing.F) {
	inputs, _ := filepath.Glob(filepath.Join(goldenDir, "*.eml"))
	for _, in := range inputs {
		if b, err := os.ReadFile(in); err == nil {
			f.Add(b)
		}
	}
	for _, b := range bombSeeds() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// Disabled: a plain copy.
		var out bytes.Buffer
		res, err := Rewrite(&out, bytes.NewReader(data), Options{})
		if err != nil || !bytes.Equal(out.Bytes(), data) || res.Changed {
			t.Fatalf("disabled: err %v, changed %v, equal %v", err, res.Changed, bytes.Equal(out.Bytes(), data))
		}

		// The whole message, and the bytes as the body of an HTML part in a
		// multipart, with a transfer encoding picked from the length.
		// Then again with every option the pipeline may set (text links,
		// pixel at the top), with the bytes also as a text/plain part.
		cte := []string{"quoted-printable", "7bit", "base64"}[len(data)%3]
		wrapped := "Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nx\r\n" +
			"--b\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: " + cte + "\r\n\r\n" + string(data) + "\r\n--b--\r\n"
		asText := "Content-Type: text/plain\r\nContent-Transfer-Encoding: " + cte + "\r\n\r\n" + string(data)
		all := goldenOpts()
		all.TextLinks, all.PixelTop = true, true
		for _, opts := range []Options{goldenOpts(), all} {
			checkRewriteMessage(t, data, opts)
			checkRewriteMessage(t, []byte(wrapped), opts)
			checkRewriteMessage(t, []byte(asText), opts)
		}

		// The same bytes as HTML.
		for _, top := range []bool{false, true} {
			opts := goldenOpts()
			opts.PixelTop = top
			h := rewriteHTML(data, &opts, 0)
			checkHTMLTokens(t, data, h, &opts, 0)
		}
	})
}

// checkRewriteMessage rewrites data and checks the invariants of the output.
func checkRewriteMessage(t *testing.T, data []byte, opts Options) {
	t.Helper()
	var out bytes.Buffer
	in := bytes.Clone(data)
	res, err := RewriteBytes(&out, in, opts) // Rewrite reads src into a slice and calls it
	if err != nil {
		t.Fatalf("Rewrite: %v", err)
	}
	if !bytes.Equal(in, data) {
		t.Fatalf("RewriteBytes changed its input:\n%q\n%q", data, in)
	}
	got := out.Bytes()
	// The same, appended to a prefix from the header and body held apart.
	if n := headerLen(data); n >= 0 {
		prefix := []byte("prefix")
		app, appRes := AppendRewrite(prefix, bytes.Clone(data[:n]), bytes.Clone(data[n:]), opts)
		if !bytes.Equal(app, append(prefix, got...)) || !reflect.DeepEqual(appRes, res) {
			t.Fatalf("AppendRewrite:\n%q\n%+v\nRewriteBytes:\n%q\n%+v", app, appRes, got, res)
		}
	}
	if res.Changed == bytes.Equal(got, data) {
		t.Fatalf("Changed = %v, output equal to input = %v", res.Changed, bytes.Equal(got, data))
	}
	checkFound(t, res)
	if !res.Changed {
		return
	}
	if parseAll(data) == nil {
		if err := parseAll(got); err != nil {
			t.Fatalf("input parses, output does not: %v\n%q\n%q", err, data, got)
		}
	}
	li, err := leafParts(data)
	if err != nil {
		return
	}
	lo, err := leafParts(got)
	if err != nil {
		t.Fatalf("output leaves: %v", err)
	}
	if len(li) != len(lo) {
		t.Fatalf("%d leaves in input, %d in output", len(li), len(lo))
	}
	for i := range li {
		if !li[i].rewritableWith(opts.TextLinks) && (!bytes.Equal(li[i].body, lo[i].body) || fmt.Sprint(li[i].header) != fmt.Sprint(lo[i].header)) {
			t.Fatalf("leaf %s changed", li[i].path)
		}
	}
}

// FuzzParseClickID checks that ParseClickID never panics and accepts only
// the exact ids ClickID makes.
func FuzzParseClickID(f *testing.F) {
	s := NewSigner([]byte("fuzz secret"))
	f.Add(s.ClickID(testEmailID, 0))
	f.Add(s.ClickID(testEmailID, 12345))
	f.Add("em_x.1.AAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, id string) {
		email, index, ok := s.ParseClickID(id)
		if !ok {
			if email != "" || index != 0 {
				t.Fatalf("rejected id returned %q, %d", email, index)
			}
			return
		}
		if again := s.ClickID(email, index); again != id {
			t.Fatalf("accepted %q, but ClickID(%q, %d) = %q", id, email, index, again)
		}
	})
}

// FuzzParseClick checks that ParseClick never panics and accepts only the
// exact ids SealedClickID and ClickID make.
func FuzzParseClick(f *testing.F) {
	s := NewSigner([]byte("fuzz secret"))
	f.Add(s.SealedClickID("acct_a", testEmailID, 0, "https://example.test/a?b=c#d"))
	f.Add(s.SealedClickID("acct_a", testEmailID, 7, ""))
	f.Add(s.ClickID(testEmailID, 3))
	f.Add("em_x.1.acct_a.aHR0cHM6Ly9ldmlsLnRlc3Qv.AAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, id string) {
		c, ok := s.ParseClick(id)
		if !ok {
			if c != (Click{}) {
				t.Fatalf("rejected id returned %+v", c)
			}
			return
		}
		again := s.ClickID(c.EmailID, c.Index)
		if c.AccountID != "" {
			again = s.SealedClickID(c.AccountID, c.EmailID, c.Index, c.Dest)
		}
		if again != id {
			t.Fatalf("accepted %q, but it is made as %q", id, again)
		}
	})
}

// FuzzParseFeedbackID checks that ParseFeedbackID, which reads a header
// of reports anyone can send, never panics and accepts only the ids
// FeedbackID makes (around white space, as a header value may come).
func FuzzParseFeedbackID(f *testing.F) {
	s := NewSigner([]byte("fuzz secret"))
	f.Add(s.FeedbackID(testEmailID))
	f.Add(" " + s.FeedbackID("em_x") + "\r\n")
	f.Add("em_x.AAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, id string) {
		emailID, ok := s.ParseFeedbackID(id)
		if !ok {
			if emailID != "" {
				t.Fatalf("rejected id returned %q", emailID)
			}
			return
		}
		if again := s.FeedbackID(emailID); again != strings.TrimSpace(id) {
			t.Fatalf("accepted %q, but it is made as %q", id, again)
		}
	})
}
