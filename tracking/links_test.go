package tracking

import (
	"bytes"
	"slices"
	"testing"
)

func TestSecretLink(t *testing.T) {
	tests := []struct {
		url    string
		secret bool
	}{
		// Keys of the documented list, any case, escaped or not.
		{"https://e.test/reset?token=abc", true},
		{"https://e.test/r?u=1&Token=abc", true},
		{"https://e.test/r?u=1;sig=abc", true},
		{"https://e.test/r?signature=abc", true},
		{"https://e.test/r?expires=1700000000", true},
		{"https://e.test/r?code=123456", true},
		{"https://e.test/r?otp=1", true},
		{"https://e.test/r?reset=1", true},
		{"https://e.test/r?%74oken=abc", true},
		// Suffixes.
		{"https://e.test/r?access_token=abc", true},
		{"https://e.test/r?resetToken=abc", true},
		{"https://s3.e.test/f?X-Amz-Signature=ff&X-Amz-Expires=60", true},
		// Fragment parameters (OAuth implicit flow).
		{"https://e.test/cb#access_token=abc&state=1", true},
		// Not secrets.
		{"https://e.test/news?issue=7&utm_source=mail", false},
		{"https://e.test/token/abc", false},  // path, not query
		{"https://e.test/page#token", false}, // fragment without =
		{"https://e.test/r?tokens_left=3", false},
		{"https://e.test/?", false},
	}
	for _, tt := range tests {
		if got := secretLink(tt.url); got != tt.secret {
			t.Errorf("secretLink(%q) = %v, want %v", tt.url, got, tt.secret)
		}
	}
}

func TestListUnsubscribeURLs(t *testing.T) {
	got := listUnsubscribeURLs("<mailto:u@e.test?subject=x>, <https://e.test/u?a=1&b=2>,\t< https://e.test/\r\n folded >, <ftp://x>, <unterminated")
	want := []string{"https://e.test/u?a=1&b=2", "https://e.test/folded"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestRewriteText(t *testing.T) {
	const c0, c1 = "https://t.example.test/v1/track/click/c0", "https://t.example.test/v1/track/click/c1"
	tests := []struct {
		name  string
		in    string
		want  string
		links []string
	}{
		{"bare", "go to https://e.test/a now", "go to " + c0 + " now", []string{"https://e.test/a"}},
		{"start and end", "http://e.test/a", c0, []string{"http://e.test/a"}},
		{"sentence end", "See https://e.test/a. And https://e.test/b!", "See " + c0 + ". And " + c1 + "!", []string{"https://e.test/a", "https://e.test/b"}},
		{"brackets", "(https://e.test/a) [https://e.test/w_(x)]", "(" + c0 + ") [" + c1 + "]", []string{"https://e.test/a", "https://e.test/w_(x)"}},
		{"angle brackets", "<https://e.test/a?x=1&y=2>", "<" + c0 + ">", []string{"https://e.test/a?x=1&y=2"}},
		{"upper case scheme", "HTTPS://E.TEST/A", c0, []string{"HTTPS://E.TEST/A"}},
		{"glued to a word", "xhttps://e.test/a 1http://e.test/b", "xhttps://e.test/a 1http://e.test/b", nil},
		{"scheme only", "https:// and http://", "https:// and http://", nil},
		{"line ends", "a https://e.test/a\r\nb", "a " + c0 + "\r\nb", []string{"https://e.test/a"}},
		{"secret kept", "reset: https://e.test/r?token=x", "reset: https://e.test/r?token=x", nil},
		{"unsubscribe kept", "unsubscribe: https://e.test/u?l=1", "unsubscribe: https://e.test/u?l=1", nil},
		{"non-ASCII kept in URL", "https://e.test/caf\xc3\xa9 ok", c0 + " ok", []string{"https://e.test/caf\xc3\xa9"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := goldenOpts()
			opts.untracked = []string{"https://e.test/u?l=1"}
			r := rewriteText([]byte(tt.in), &opts, 0)
			if string(r.out) != tt.want {
				t.Errorf("got %q, want %q", r.out, tt.want)
			}
			if !slices.Equal(r.links, tt.links) {
				t.Errorf("links %q, want %q", r.links, tt.links)
			}
		})
	}
}

// TestRewriteTextParts checks text/plain rewriting inside a message: only
// with TextLinks, never for attachments, transfer encodings kept, and link
// indexes continuing into the HTML part in document order.
func TestRewriteTextParts(t *testing.T) {
	in := crlfText(`List-Unsubscribe: <https://e.test/unsub>
Content-Type: multipart/mixed; boundary=m

--m
Content-Type: multipart/alternative; boundary=a

--a
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Caf=C3=A9: https://e.test/qp?x=3D1 and https://e.test/unsub
--a
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: base64

aHR0cHM6Ly9lLnRlc3QvYjY0
--a
Content-Type: text/html

<a href="https://e.test/html">h</a> <a href="https://e.test/unsub">u</a>
--a--
--m
Content-Type: text/plain; name=notes.txt
Content-Disposition: attachment; filename=notes.txt

https://e.test/attached
--m--
`)
	opts := goldenOpts()
	opts.Opens = false

	out, res := rewriteBytes(t, in, opts)
	if !slices.Equal(res.Links, []string{"https://e.test/html"}) {
		t.Errorf("without TextLinks: links %q", res.Links)
	}
	checkInvariants(t, in, out, res)

	opts.TextLinks = true
	out, res = rewriteBytes(t, in, opts)
	want := []string{"https://e.test/qp?x=1", "https://e.test/b64", "https://e.test/html"}
	if !slices.Equal(res.Links, want) {
		t.Errorf("links %q, want %q", res.Links, want)
	}
	for _, s := range []string{
		"Caf=C3=A9: https://t.example.test/v1/track/click/c0 and https://e.test/unsu=\r\nb", // QP soft break
		"aHR0cHM6Ly90LmV4YW1wbGUudGVzdC92MS90cmFjay9jbGljay9jMQ==",                          // base64 of the click URL c1
		`<a href="https://t.example.test/v1/track/click/c2">h</a> <a href="https://e.test/unsub">u</a>`,
		"\r\nhttps://e.test/attached\r\n",
	} {
		if !bytes.Contains(out, []byte(s)) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}
	if len(res.Warnings) > 0 {
		t.Errorf("warnings %q", res.Warnings)
	}
	checkInvariantsText(t, in, out, res, true)

	// Clicks off: TextLinks alone changes nothing.
	opts.Clicks, opts.Opens = false, true
	_, res = rewriteBytes(t, in, opts)
	if len(res.Links) != 0 {
		t.Errorf("clicks off: links %q", res.Links)
	}
}
