package tracking

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

// crlfText turns a test literal written with LF line endings into CRLF.
func crlfText(s string) []byte {
	return []byte(strings.ReplaceAll(s, "\n", "\r\n"))
}

// htmlMsg is a single-part text/html message with extra header lines.
func htmlMsg(extraHeader, body string) []byte {
	return crlfText("From: a@example.com\nSubject: t\nContent-Type: text/html; charset=utf-8\n" + extraHeader + "\n" + body)
}

func TestRewriteDisabledCopiesWithoutParsing(t *testing.T) {
	in := []byte("not a message at all\n\x00\xff--")
	out, res := rewriteBytes(t, in, Options{PixelURL: testPixelURL})
	if !bytes.Equal(out, in) || res.Changed || len(res.Warnings) > 0 || res.Links != nil {
		t.Errorf("got %q, %+v", out, res)
	}
}

func TestRewriteUnchanged(t *testing.T) {
	tests := map[string][]byte{
		"plain text": crlfText("Subject: x\n\nhttps://example.com/\n"),
		"no body":    crlfText("Subject: x\n"),
		"html attachment": crlfText("Content-Type: text/html\nContent-Disposition: attachment; filename=a.html\n\n" +
			"<a href=\"https://example.com/\">x</a></body>\n"),
		"html inline in rfc822": crlfText("Content-Type: message/rfc822\n\nContent-Type: text/html\n\n<a href=\"https://example.com/\">x</a>\n"),
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			out, res := rewriteBytes(t, in, goldenOpts())
			if !bytes.Equal(out, in) || res.Changed || len(res.Links) > 0 || len(res.Warnings) > 0 {
				t.Errorf("got %q, %+v", out, res)
			}
		})
	}
}

func TestRewriteOptions(t *testing.T) {
	in := htmlMsg("", "<body><a href=\"https://example.com/a\">a</a></body>\n")
	tests := []struct {
		name           string
		opens, clicks  bool
		pixel, tracked bool
	}{
		{"opens only", true, false, true, false},
		{"clicks only", false, true, false, true},
		{"both", true, true, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := goldenOpts()
			opts.Opens, opts.Clicks = tt.opens, tt.clicks
			out, res := rewriteBytes(t, in, opts)
			if got := bytes.Contains(out, []byte(px)); got != tt.pixel {
				t.Errorf("pixel present = %v", got)
			}
			if got := bytes.Contains(out, []byte(`href="https://t.example.test/v1/track/click/c0"`)); got != tt.tracked {
				t.Errorf("link rewritten = %v", got)
			}
			if tt.tracked != (len(res.Links) == 1) {
				t.Errorf("Links = %q", res.Links)
			}
			if !res.Changed {
				t.Error("Changed = false")
			}
		})
	}
}

func TestRewriteClicksWithoutLinksIsUnchanged(t *testing.T) {
	in := htmlMsg("", "<body><a href=\"mailto:x@example.com\">a</a></body>\n")
	opts := goldenOpts()
	opts.Opens = false
	out, res := rewriteBytes(t, in, opts)
	if !bytes.Equal(out, in) || res.Changed {
		t.Errorf("got %q, %+v", out, res)
	}
}

func TestRewriteMissingURLs(t *testing.T) {
	in := htmlMsg("", "<body><a href=\"https://example.com/a\">a</a></body>\n")
	out, res := rewriteBytes(t, in, Options{Opens: true, Clicks: true})
	if !bytes.Equal(out, in) || res.Changed || len(res.Warnings) != 2 {
		t.Errorf("got %q, %+v", out, res)
	}
}

// TestRewriteLinksDecoded checks that Links hold the entity-decoded hrefs
// in document order across parts and that the output escapes the click URL
// exactly once.
func TestRewriteLinksDecoded(t *testing.T) {
	in := crlfText(`Content-Type: multipart/alternative; boundary=b

--b
Content-Type: text/html; charset=utf-8

<a href="https://e.test/?a=1&amp;b=2">1</a> <a href="https://e.test/&#x2F;p?q=&quot;x&quot;">2</a>
--b
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: quoted-printable

<a href=3D"https://e.test/3?c=3D1&amp;d=3D2">3</a>
--b--
`)
	opts := goldenOpts()
	opts.ClickURL = func(i int, dest string) string { return fmt.Sprintf("https://t.example.test/c%d?i=%d&k=v", i, i) }
	out, res := rewriteBytes(t, in, opts)
	want := []string{"https://e.test/?a=1&b=2", `https://e.test//p?q="x"`, "https://e.test/3?c=1&d=2"}
	if !slices.Equal(res.Links, want) {
		t.Errorf("Links = %q, want %q", res.Links, want)
	}
	for i := range 3 {
		href := fmt.Sprintf(`href="https://t.example.test/c%d?i=%d&amp;k=v"`, i, i)
		if i == 2 {
			href = fmt.Sprintf(`href=3D"https://t.example.test/c%d?i=3D%d&amp;k=3Dv"`, i, i)
		}
		if !bytes.Contains(out, []byte(href)) {
			t.Errorf("output lacks %s:\n%s", href, out)
		}
	}
	if bytes.Contains(out, []byte("&amp;amp;")) {
		t.Errorf("double escaping in\n%s", out)
	}
	checkInvariants(t, in, out, res)
}

func TestRewriteWarnings(t *testing.T) {
	link := "<body><a href=\"https://example.com/a\">a</a></body>\n"
	nested := func(depth int) []byte {
		var b strings.Builder
		b.WriteString("Content-Type: multipart/mixed; boundary=b0\n\n")
		for i := range depth {
			fmt.Fprintf(&b, "--b%d\nContent-Type: multipart/mixed; boundary=b%d\n\n", i, i+1)
		}
		fmt.Fprintf(&b, "--b%d\nContent-Type: text/html\n\n%s", depth, link)
		for i := depth; i >= 0; i-- {
			fmt.Fprintf(&b, "--b%d--\n", i)
		}
		return crlfText(b.String())
	}
	tests := []struct {
		name string
		in   []byte
		warn string
	}{
		{"bad base64", htmlMsg("Content-Transfer-Encoding: base64\n", "PGE+!!!\n"), "invalid base64"},
		{"bad quoted-printable", htmlMsg("Content-Transfer-Encoding: quoted-printable\n", "<a href=3D\"https://e.test/\">=ZZ=\n=\x01</a>\n"), "invalid quoted-printable"},
		{"unknown encoding", htmlMsg("Content-Transfer-Encoding: x-uuencode\n", link), "unknown Content-Transfer-Encoding"},
		{"utf-16", crlfText("Content-Type: text/html; charset=UTF-16LE\n\n" + link), "not ASCII-compatible"},
		{"bad content type", crlfText("Content-Type: text/html; charset\n\n" + link), "unparseable Content-Type"},
		{"no boundary", crlfText("Content-Type: multipart/mixed\n\n--b\nContent-Type: text/html\n\n" + link + "--b--\n"), "without a usable boundary"},
		{"unterminated multipart", crlfText("Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/html\n\n" + link), "malformed multipart"},
		{"LF delimiters", []byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\nContent-Type: text/html\n\n" + link + "--b--\n"), "malformed multipart"},
		{"junk after delimiter", crlfText("Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/html\n\n" + link + "--b junk\n\n--b--\n"), "malformed multipart"},
		{"bad part header", crlfText("Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/html\nno colon\n\n" + link + "--b--\n"), "malformed multipart"},
		{"LF line endings", []byte("Content-Type: text/html\n\n" + link), "no CRLF blank line"},
		{"bad message header", []byte("Content-Type: text/html\r\nX: a\rb\r\n\r\n" + link), "malformed header"},
		{"too deep", nested(maxDepth), "nested deeper"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, res := rewriteBytes(t, tt.in, goldenOpts())
			if !bytes.Equal(out, tt.in) || res.Changed || len(res.Links) > 0 {
				t.Errorf("output changed: %q, %+v", out, res)
			}
			if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], tt.warn) {
				t.Errorf("Warnings = %q, want one containing %q", res.Warnings, tt.warn)
			}
		})
	}

	// Just inside the depth limit the part is rewritten.
	in := nested(maxDepth - 1)
	out, res := rewriteBytes(t, in, goldenOpts())
	if len(res.Links) != 1 || len(res.Warnings) > 0 {
		t.Errorf("depth %d: %+v", maxDepth-1, res)
	}
	checkInvariants(t, in, out, res)
}

func TestRewritePartLimit(t *testing.T) {
	var b strings.Builder
	b.WriteString("Content-Type: multipart/mixed; boundary=b\n\n")
	for i := range maxParts + 5 {
		fmt.Fprintf(&b, "--b\nContent-Type: text/html\n\n<a href=\"https://e.test/%d\">x</a>\n", i)
	}
	b.WriteString("--b--\n")
	in := crlfText(b.String())
	out, res := rewriteBytes(t, in, goldenOpts())
	if len(res.Links) != maxParts || res.Links[maxParts-1] != fmt.Sprintf("https://e.test/%d", maxParts-1) {
		t.Errorf("%d links, last %q", len(res.Links), res.Links[len(res.Links)-1])
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "more than 1000 parts") {
		t.Errorf("Warnings = %q", res.Warnings)
	}
	if !bytes.HasSuffix(out, crlfText("--b\nContent-Type: text/html\n\n<a href=\"https://e.test/1004\">x</a>\n--b--\n")) {
		t.Error("parts beyond the limit were changed")
	}
}

func TestRewriteLongLineSwitchesToQP(t *testing.T) {
	long := strings.Repeat("x", 950)
	for _, hdr := range []string{"Content-Transfer-Encoding: 8bit\n", ""} {
		in := htmlMsg(hdr, "<p>"+long+"<a href=\"https://e.test/\">x</a></p>\n")
		out, res := rewriteBytes(t, in, goldenOpts())
		if !bytes.Contains(out, []byte("Content-Transfer-Encoding: quoted-printable\r\n\r\n<p>xxx")) {
			t.Errorf("%q: no switch to quoted-printable:\n%s", hdr, out)
		}
		if bytes.Contains(out, []byte("8bit")) {
			t.Error("old encoding left in header")
		}
		for _, line := range bytes.Split(out, crlf) {
			if len(line) > 76 {
				t.Errorf("line of %d octets", len(line))
			}
		}
		checkInvariants(t, in, out, res)
	}

	// A binary part has no line limit.
	in := htmlMsg("Content-Transfer-Encoding: binary\n", "<p>"+long+"<a href=\"https://e.test/\">x</a></p>\n")
	out, _ := rewriteBytes(t, in, goldenOpts())
	if !bytes.Contains(out, []byte("Content-Transfer-Encoding: binary\r\n")) {
		t.Errorf("binary part re-encoded:\n%s", out)
	}
}

// TestRewriteBoundaryCollision builds a quoted-printable part whose
// re-wrapped lines would start with the enclosing boundary.
func TestRewriteBoundaryCollision(t *testing.T) {
	line := strings.Repeat("a", 40) + "=\n" + strings.Repeat("a", 35) + "--xyz more"
	in := crlfText("Content-Type: multipart/alternative; boundary=xyz\n\n--xyz\n" +
		"Content-Type: text/html\nContent-Transfer-Encoding: quoted-printable\n\n" + line + "\n--xyz--\n")
	if err := parseAll(in); err != nil {
		t.Fatal(err)
	}
	opts := goldenOpts()
	opts.Clicks = false
	out, res := rewriteBytes(t, in, opts)
	if !bytes.Equal(out, in) || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "boundary") {
		t.Errorf("got %+v\n%s", res, out)
	}
}

func TestRewriteKeepsStructure(t *testing.T) {
	// Preamble, transport padding after delimiters, empty parts, a part
	// without header fields and an epilogue all survive.
	in := crlfText("Subject: s\nContent-Type: Multipart/Mixed;\n\tboundary=\"a b\"\n\npreamble\n--a b  \n\n" +
		"no header, so text/plain\n--a b\t\nContent-Type: text/html\n\n--a b\ncontent-type: TEXT/HTML\n\n" +
		"<a href=\"https://e.test/\">x</a>\n\n--a b--  \nepilogue\n")
	out, res := rewriteBytes(t, in, goldenOpts())
	want := bytes.Replace(in, []byte("<a href=\"https://e.test/\">x</a>\r\n"),
		[]byte("<a href=\"https://t.example.test/v1/track/click/c0\">x</a>\r\n"+px), 1)
	if !bytes.Equal(out, want) {
		t.Errorf("got\n%q\nwant\n%q", out, want)
	}
	if len(res.Warnings) > 0 {
		t.Errorf("warnings %q", res.Warnings)
	}
	checkInvariants(t, in, out, res)
}

// TestRewriteIntoBuffer: a bytes.Buffer destination, which Rewrite builds
// the output in, gets what any other writer gets, after what it held.
func TestRewriteIntoBuffer(t *testing.T) {
	msgs := map[string][]byte{
		"changed":   htmlMsg("", "<body><a href=\"https://e.test/\">x</a></body>\n"),
		"unchanged": crlfText("Subject: x\n\nhttps://example.com/\n"),
	}
	for name, in := range msgs {
		t.Run(name, func(t *testing.T) {
			var plain bytes.Buffer
			if _, err := Rewrite(struct{ io.Writer }{&plain}, bytes.NewReader(in), goldenOpts()); err != nil {
				t.Fatal(err)
			}
			for _, room := range []int{0, 8, 1 << 20} { // no room, too little, plenty
				buf := bytes.NewBufferString("prefix")
				buf.Grow(room)
				if _, err := Rewrite(buf, bytes.NewReader(in), goldenOpts()); err != nil {
					t.Fatal(err)
				}
				if got := buf.String(); got != "prefix"+plain.String() {
					t.Errorf("room %d: got %q, want prefix + %q", room, got, plain.String())
				}
			}
		})
	}
}

func TestRewriteIOErrors(t *testing.T) {
	in := htmlMsg("", "<body><a href=\"https://e.test/\">x</a></body>\n")
	errRead := errors.New("read failed")
	for _, opts := range []Options{goldenOpts(), {}} {
		if _, err := Rewrite(io.Discard, iotest.ErrReader(errRead), opts); !errors.Is(err, errRead) {
			t.Errorf("read error: got %v", err)
		}
		var w failWriter
		if _, err := Rewrite(&w, bytes.NewReader(in), opts); !errors.Is(err, errWrite) {
			t.Errorf("write error: got %v", err)
		}
		if _, err := Rewrite(shortWriter{}, bytes.NewReader(in), opts); !errors.Is(err, io.ErrShortWrite) {
			t.Errorf("short write: got %v", err)
		}
	}
}

var errWrite = errors.New("write failed")

type failWriter struct{}

func (*failWriter) Write([]byte) (int, error) { return 0, errWrite }

type shortWriter struct{}

func (shortWriter) Write(p []byte) (int, error) { return len(p) / 2, nil }
