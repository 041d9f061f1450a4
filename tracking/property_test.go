package tracking

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/quotedprintable"
	"slices"
	"strings"
	"testing"
)

// treeGen generates random MIME trees and records the links Rewrite should
// report for them.
type treeGen struct {
	r     *rand.Rand
	links []string // expected Result.Links, in document order
	n     int      // counter for unique boundaries and URLs
}

// entity returns one entity (header block, blank line, body) with LF line
// endings; the caller converts the whole message to CRLF.
func (g *treeGen) entity(depth int) string {
	if depth < 3 && g.r.IntN(3) == 0 {
		g.n++
		boundary := fmt.Sprintf("=_b%d_%d", depth, g.n)
		sub := []string{"mixed", "alternative", "related"}[g.r.IntN(3)]
		var b strings.Builder
		fmt.Fprintf(&b, "Content-Type: multipart/%s; boundary=\"%s\"\n\n", sub, boundary)
		if g.r.IntN(2) == 0 {
			b.WriteString("This is a multi-part message in MIME format.\n")
		}
		for range 1 + g.r.IntN(4) {
			fmt.Fprintf(&b, "--%s\n%s\n", boundary, g.entity(depth+1))
		}
		fmt.Fprintf(&b, "--%s--\n", boundary)
		if g.r.IntN(2) == 0 {
			b.WriteString("epilogue\n")
		}
		return b.String()
	}
	switch g.r.IntN(5) {
	case 0:
		return "Content-Type: text/plain; charset=utf-8\n\nSee https://example.com/plain?a=1&b=2 <a href=\"https://e.test/\">\n"
	case 1:
		return "Content-Type: image/png\nContent-Transfer-Encoding: base64\nContent-ID: <img@e.test>\n\n" + g.base64(g.bytes(200)) + "\n"
	case 2:
		return "Content-Type: application/pdf; name=r.pdf\nContent-Transfer-Encoding: base64\nContent-Disposition: attachment; filename=r.pdf\n\n" + g.base64(g.bytes(300)) + "\n"
	default:
		attachment := g.r.IntN(4) == 0
		html := g.html(!attachment)
		hdr := "Content-Type: text/html; charset=utf-8\n"
		if attachment {
			hdr += "Content-Disposition: attachment; filename=page.html\n"
		}
		switch g.r.IntN(3) {
		case 0:
			return hdr + "\n" + html + "\n"
		case 1:
			var b bytes.Buffer
			w := quotedprintable.NewWriter(&b)
			w.Write([]byte(html))
			w.Close()
			return hdr + "Content-Transfer-Encoding: quoted-printable\n\n" + strings.ReplaceAll(b.String(), "\r\n", "\n") + "\n"
		default:
			return hdr + "Content-Transfer-Encoding: base64\n\n" + g.base64([]byte(html)) + "\n"
		}
	}
}

// html returns a document with random links; track says whether its
// tracked links count.
func (g *treeGen) html(track bool) string {
	var b strings.Builder
	withBody := g.r.IntN(4) != 0
	if withBody {
		b.WriteString("<html><head><style>a{color:red}</style></head><body>\n")
	}
	for range g.r.IntN(6) {
		g.n++
		switch g.r.IntN(5) {
		case 0, 1:
			dest := fmt.Sprintf("https://e.test/p%d?a=1&b=%d", g.n, g.n)
			fmt.Fprintf(&b, "<p>Go <a class=\"l\" href=\"%s\">here</a> now.</p>\n", strings.ReplaceAll(dest, "&", "&amp;"))
			if track {
				g.links = append(g.links, dest)
			}
		case 2:
			fmt.Fprintf(&b, "<p><a href=\"https://e.test/private%d\" data-sp-notrack>private</a></p>\n", g.n)
		case 3:
			fmt.Fprintf(&b, "<p><a href=\"mailto:x%d@e.test\">mail</a> <a href=\"#s%d\">jump</a></p>\n", g.n, g.n)
		default:
			b.WriteString("<p>" + strings.Repeat("Lorem ipsum dolor sit amet. ", 1+g.r.IntN(8)) + "</p>\n")
		}
	}
	if withBody {
		b.WriteString("</body></html>")
	}
	return b.String()
}

func (g *treeGen) bytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(g.r.IntN(256))
	}
	return b
}

func (g *treeGen) base64(b []byte) string {
	s := base64.StdEncoding.EncodeToString(b)
	var lines []string
	for len(s) > 76 {
		lines, s = append(lines, s[:76]), s[76:]
	}
	return strings.Join(append(lines, s), "\n")
}

// decodeLeaf undoes the transfer encoding of a leaf with the standard
// library.
func decodeLeaf(t *testing.T, l leaf) []byte {
	t.Helper()
	var b []byte
	var err error
	switch strings.ToLower(l.header.Get("Content-Transfer-Encoding")) {
	case "quoted-printable":
		b, err = io.ReadAll(quotedprintable.NewReader(bytes.NewReader(l.body)))
	case "base64":
		b, err = base64.StdEncoding.DecodeString(strings.NewReplacer("\r", "", "\n", "").Replace(string(l.body)))
	default:
		b = l.body
	}
	if err != nil {
		t.Fatalf("part %s: %v", l.path, err)
	}
	return b
}

func TestRewriteRandomTrees(t *testing.T) {
	for seed := range uint64(300) {
		g := &treeGen{r: rand.New(rand.NewPCG(seed, 1))}
		in := crlfText("From: a@e.test\nTo: b@e.test\nSubject: random tree\nMIME-Version: 1.0\n" + g.entity(0))
		out, res := rewriteBytes(t, in, goldenOpts())
		if !slices.Equal(res.Links, g.links) {
			t.Fatalf("seed %d: Links = %q, want %q", seed, res.Links, g.links)
		}
		if len(res.Warnings) > 0 {
			t.Fatalf("seed %d: warnings %q", seed, res.Warnings)
		}
		// Every HTML part that is not an attachment has exactly one pixel
		// and has lost its data-sp-notrack markers.
		for _, l := range leaves(t, out) {
			if !l.rewritable() {
				continue
			}
			html := decodeLeaf(t, l)
			if n := bytes.Count(html, []byte(px)); n != 1 || bytes.Contains(html, []byte(noTrackAttr)) {
				t.Fatalf("seed %d: part %s has %d pixels, notrack marker %v:\n%s", seed, l.path, n, bytes.Contains(html, []byte(noTrackAttr)), html)
			}
		}
		checkInvariants(t, in, out, res)
		if t.Failed() {
			t.Fatalf("seed %d failed; input:\n%s", seed, in)
		}
	}
}
