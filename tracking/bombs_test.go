package tracking

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// MIME bombs (docs/security.md, S11): each is copied unchanged where the
// rewriter's limits stop it, with a warning that says which limit, and the
// work done is bounded by the limits, not by the input: the headers parsed
// (Result.entities) and the bytes allocated, however many parts, levels or
// header lines the message has.

// nestedBomb is a message of depth multiparts, each the only part of the
// one above, around an HTML part with a link.
func nestedBomb(depth int) []byte {
	var b strings.Builder
	b.WriteString("From: a@acme.test\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n")
	for i := 1; i < depth; i++ {
		fmt.Fprintf(&b, "--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n", i-1, i)
	}
	fmt.Fprintf(&b, "--b%d\r\nContent-Type: text/html\r\n\r\n<a href=\"https://e.test/deep\">x</a>\r\n", depth-1)
	for i := depth - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "--b%d--\r\n", i)
	}
	return []byte(b.String())
}

// htmlLinkPart is an HTML part with one link, to show that the rewriter
// still does its work beside the bomb.
const htmlLinkPart = "Content-Type: text/html\r\n\r\n<a href=\"https://e.test/first\">x</a>\r\n"

// partsBomb is a multipart of an HTML part then n empty parts, each with
// one header line of about lineLen bytes, or none if lineLen is 0.
func partsBomb(n, lineLen int) []byte {
	var b bytes.Buffer
	b.WriteString("From: a@acme.test\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n" + htmlLinkPart)
	line := ""
	if lineLen > 0 {
		line = "X-Pad: " + strings.Repeat("p", max(0, lineLen-len("X-Pad: \r\n"))) + "\r\n"
	}
	for range n {
		b.WriteString("--b\r\n" + line + "\r\n")
	}
	b.WriteString("--b--\r\n")
	return b.Bytes()
}

// headerBomb is a multipart of an HTML part with lines header lines, and
// an HTML part with a link.
func headerBomb(lines int) []byte {
	var b bytes.Buffer
	b.WriteString("From: a@acme.test\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n")
	b.WriteString(strings.Repeat("X-H: v\r\n", lines))
	b.WriteString("Content-Type: text/html\r\n\r\n<a href=\"https://e.test/flooded\">x</a>\r\n--b\r\n" + htmlLinkPart + "--b--\r\n")
	return b.Bytes()
}

// rewriteMeasured rewrites in with every option the pipeline may set and
// returns the output, the result and the bytes allocated meanwhile.
func rewriteMeasured(t *testing.T, in []byte) ([]byte, Result, uint64) {
	t.Helper()
	opts := goldenOpts()
	opts.TextLinks = true
	var out bytes.Buffer
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	res, err := RewriteBytes(&out, in, opts)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	return out.Bytes(), res, after.TotalAlloc - before.TotalAlloc
}

func TestRewriteMIMEBombs(t *testing.T) {
	qpLine := strings.Repeat("a", 1_000_000) + "<a href=\"https://e.test/qp\">x</a>"
	longBoundary := strings.Repeat("B", 100)
	for _, c := range []struct {
		name string
		in   []byte
		// links are the links rewritten (nil: the message comes out as it went in).
		links []string
		warn  string // in the only warning ("" for none)
		// entities bounds the headers parsed.
		entities int
	}{
		{"150 nested multiparts", nestedBomb(150), nil,
			"multipart nested deeper than 50 levels; left unchanged", maxDepth + 1},
		{"100,000 empty parts in 10 MB", partsBomb(100_000, 100), []string{"https://e.test/first"},
			"part 1001: message has more than 1000 parts; this and later parts left unchanged", maxParts + 1},
		{"1,500,000 parts of nothing in 10 MB", partsBomb(1_500_000, 0), []string{"https://e.test/first"},
			"part 1001: message has more than 1000 parts; this and later parts left unchanged", maxParts + 1},
		{"a part of 20,000 header lines", headerBomb(20_000), []string{"https://e.test/first"},
			"part 1: header of more than 10000 lines; left unchanged", 2},
		{"a part of 10 MB of header lines", headerBomb(10 << 20 / len("X-H: v\r\n")), []string{"https://e.test/first"},
			"part 1: header of more than 10000 lines; left unchanged", 2},
		{"a part of 10,000 header lines", headerBomb(maxHeaderLines - 1), []string{"https://e.test/flooded", "https://e.test/first"},
			"", 3},
		{"a message header of 20,000 lines", []byte("From: a@acme.test\r\n" + strings.Repeat("X-H: v\r\n", 20_000) + htmlLinkPart), nil,
			"message: header of more than 10000 lines; left unchanged", 0},
		{"no closing boundary", []byte("From: a@acme.test\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n" + htmlLinkPart), nil,
			"malformed multipart structure; left unchanged", 1},
		{"a 100-character boundary", []byte("From: a@acme.test\r\nContent-Type: multipart/alternative; boundary=" + longBoundary + "\r\n\r\n--" +
			longBoundary + "\r\n" + htmlLinkPart + "--" + longBoundary + "--\r\n"), []string{"https://e.test/first"}, "", 2},
		{"invalid base64", []byte("From: a@acme.test\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
			"PGEgaHJlZj0iaHR0cHM6Ly9lLnRlc3QvIj54PC9hPg=!!*\r\n"), nil, "invalid base64 body", 1},
		{"a quoted-printable line of 1,000,000 characters", []byte("From: a@acme.test\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
			qpLine + "\r\n"), nil, "invalid quoted-printable body", 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, res, alloc := rewriteMeasured(t, c.in)
			if len(res.Links) != len(c.links) || (c.links != nil && strings.Join(res.Links, " ") != strings.Join(c.links, " ")) {
				t.Errorf("links %q, want %q", res.Links, c.links)
			}
			if c.links == nil && (!bytes.Equal(out, c.in) || res.Changed) {
				t.Errorf("the message was changed")
			}
			switch {
			case c.warn == "" && len(res.Warnings) > 0:
				t.Errorf("warnings %q", res.Warnings)
			case c.warn != "" && (len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], c.warn)):
				t.Errorf("warnings %q, want one saying %q", res.Warnings, c.warn)
			}
			if res.entities > c.entities {
				t.Errorf("%d headers parsed, want at most %d", res.entities, c.entities)
			}
			// The output buffer is an eighth more than the input; the rest
			// is the parts' own buffers. Without the limits, the header
			// lines alone take a hundred times the input.
			if limit := uint64(3*len(c.in) + 8<<20); alloc > limit {
				t.Errorf("allocated %d MB for a %d KB message (limit %d MB)", alloc>>20, len(c.in)>>10, limit>>20)
			}
		})
	}
}

// Past the part limit, the parts left unchanged come out byte for byte,
// however many: the bomb above, with its tail compared.
func TestRewritePartsBombTailUnchanged(t *testing.T) {
	in := partsBomb(100_000, 100)
	if len(in) < 10<<20 {
		t.Fatalf("the bomb is %d bytes, want 10 MB", len(in))
	}
	out, res, _ := rewriteMeasured(t, in)
	first := bytes.Index(in, []byte("--b\r\nX-Pad"))
	if !res.Changed || !bytes.HasSuffix(out, in[first:]) {
		t.Errorf("changed %v; the empty parts did not come out as they went in", res.Changed)
	}
}

// bombSeeds are the bombs above at the smallest size that passes each
// limit, for FuzzRewrite's seed corpus.
func bombSeeds() [][]byte {
	return [][]byte{
		nestedBomb(maxDepth + 2),
		partsBomb(maxParts+1, 0),
		headerBomb(maxHeaderLines + 1),
		[]byte("From: a@acme.test\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n" + htmlLinkPart),
		[]byte("From: a@acme.test\r\nContent-Type: multipart/alternative; boundary=" + strings.Repeat("B", 71) + "\r\n\r\n--" +
			strings.Repeat("B", 71) + "\r\n" + htmlLinkPart + "--" + strings.Repeat("B", 71) + "--\r\n"),
		[]byte("From: a@acme.test\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\nPGEgaHJlZj0iaHR0cHM6Ly9lLnRlc3QvIj54PC9hPg=!!*\r\n"),
		[]byte("From: a@acme.test\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
			strings.Repeat("a", 5000) + "<a href=\"https://e.test/qp\">x</a>\r\n"),
	}
}
