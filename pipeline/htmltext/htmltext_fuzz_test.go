package htmltext

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// hidden is put only inside script, style, noscript, title and comments of
// the documents FuzzFromHTML builds. Its '$' and '%' stand for markup in
// the fuzz input, so the input's own text can never spell it.
const hidden = "h$dd%n"

// FuzzFromHTML checks the text alternative of any HTML body:
//   - whatever the input, the output is valid UTF-8, ends with one "\n",
//     has no CR, tab or form feed, no run of spaces, no line with a
//     leading or trailing space and at most one blank line in a row;
//   - input without '<' or '&' is plain text: its words are kept, in
//     order (white space collapses; Unicode spaces at a line's ends go);
//   - in a document built from the input (some characters stand for tags,
//     the rest is text), what is inside script, style, noscript, title or
//     a comment never shows, and every character of the text shows, in order.
func FuzzFromHTML(f *testing.F) {
	for _, s := range []string{
		"<p>a</p><p>b</p>",
		"a<br>b",
		"<ul><li>one</li><li>two</li></ul>",
		"<style>p{x:y}</style><script>evil()</script>x",
		"&lt;tag&gt; &amp;   spaces\n\n here",
		`<a href="https://x.test">https://x.test</a>`,
		`<a href="javascript:alert(1)">click</a>`,
		`<img alt="Logo" src="x.png">Hi`,
		"<script>alert(1)</script>",
		"<script><script>x</script>y</script>z",
		"<scr<script>ipt>alert(1)</script>",
		"<style>a{}</style  ><p>after",
		"<!-- hidden --><title>T</title><noscript>n</noscript>text",
		"<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>",
		"<hr><pre>  a\n  b</pre><blockquote>q</blockquote>",
		"<a href=\"mailto:x@y.test\">write <b>us</b></a> <a href=\"#top\">top</a>",
		"plain words\twith\r\ntabs and \u00a0 nbsp\f",
		"caf\xe9 \xff\xfe invalid",
		"a\x00b",
		"(ab[cd]e){f}|g^h#i$j%k!l`m@n",
		"((([[[{{{x}}}]]])))",
		"</a></a></li></script></style>tail",
		"<html><head><meta charset=utf-8><body><p>Hello</p></body></html>",
		"*Hello(world)",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		if len(src) > 8192 {
			return
		}
		checkShape(t, src, FromHTML(src))

		if !strings.ContainsAny(src, "<&") {
			got, want := strings.Fields(FromHTML(src)), strings.Fields(string([]rune(src)))
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Fatalf("plain text lost or changed words\nin:  %q\ngot: %q", src, got)
			}
		}

		doc, text := buildDocument(src)
		out := FromHTML(doc)
		checkShape(t, doc, out)
		if strings.Contains(out, hidden) {
			t.Fatalf("hidden content shows\ndoc: %q\nout: %q", doc, out)
		}
		if !subsequence(nonSpace(text), nonSpace(out)) {
			t.Fatalf("text lost\ndoc:  %q\ntext: %q\nout:  %q", doc, text, out)
		}
	})
}

// checkShape checks the properties of any output.
func checkShape(t *testing.T, in, out string) {
	t.Helper()
	fail := func(why string) { t.Fatalf("%s\nin:  %q\nout: %q", why, in, out) }
	switch {
	case !utf8.ValidString(out):
		fail("output is not UTF-8")
	case !strings.HasSuffix(out, "\n") || (strings.HasSuffix(out, "\n\n")):
		fail("output does not end with exactly one line break")
	case strings.ContainsAny(out, "\r\t\f"):
		fail("output has CR, tab or form feed")
	case strings.Contains(out, "  "):
		fail("output has a run of spaces")
	case strings.Contains(out, "\n\n\n"):
		fail("output has more than one blank line in a row")
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, " ") || strings.HasSuffix(line, " ") {
			fail("a line starts or ends with a space")
		}
	}
}

// buildDocument reads src as a small markup language: the characters below
// stand for tags, '<' and '&' are escaped, and every other rune is text. It
// returns the document and the text it holds.
func buildDocument(src string) (doc, text string) {
	tags := map[rune]string{
		'(': "<div>", ')': "</div>",
		'[': `<a href="https://x.test/l">`, ']': "</a>",
		'{': "<li>", '}': "</li>",
		'|': "<td>", '^': "<br>", '#': "<p>", '~': "<hr>",
		'$': "<script>if (a < b && c) { x = '" + hidden + "</scr' + 'ipt>'; }</script>",
		'%': "<style>p { content: \"" + hidden + "\" }</style>",
		'!': "<!-- " + hidden + " -->",
		'`': "<title>" + hidden + "</title>",
		'@': "<noscript>" + hidden + "<p>x</p></noscript>",
		// The head's end tag is optional (HTML 13.1.2.4): text after it is body text.
		'*': "<head><meta charset=utf-8><title>" + hidden + "</title>",
	}
	var d, tx strings.Builder
	for _, r := range src { // invalid UTF-8 becomes U+FFFD on both sides
		if tag, ok := tags[r]; ok {
			d.WriteString(tag)
			continue
		}
		switch r {
		case '<':
			d.WriteString("&lt;")
		case '&':
			d.WriteString("&amp;")
		default:
			d.WriteRune(r)
		}
		tx.WriteRune(r)
	}
	return d.String(), tx.String()
}

func nonSpace(s string) []rune {
	var out []rune
	for _, r := range s {
		// FromHTML collapses ASCII white space and U+00A0; other Unicode
		// white space (\v, U+2003 ...) is kept inside a line and trimmed
		// at its ends.
		if !unicode.IsSpace(r) {
			out = append(out, r)
		}
	}
	return out
}

// subsequence reports whether sub appears in s in order, not necessarily
// contiguously (FromHTML adds bullets, rules and link targets).
func subsequence(sub, s []rune) bool {
	i := 0
	for _, r := range s {
		if i < len(sub) && r == sub[i] {
			i++
		}
	}
	return i == len(sub)
}
