package compose

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"mime"
	"net/http"
	nettextproto "net/textproto"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/emersion/go-message/textproto"
	xhtml "golang.org/x/net/html"

	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// FuzzTemplate parses src as a template and renders it with every variable
// set to value. What a value can do is the property: in the html part
// it adds no markup (no '<', '>' or quote of its own, and the document has
// the same tags and attributes as with a harmless value of the same length);
// in the subject it never brings a line break into the header; rendering
// never panics; a template that does not parse is a typed 400.
func FuzzTemplate(f *testing.F) {
	seeds := []struct{ src, value string }{
		{"<p>Hello {{ name }}</p>", "<script>alert(1)</script> & co"},
		{"Hi {{name}}", "x\r\nBcc: v@victim.test"},
		{`<a href="{{u}}">x</a> <a href={{v}}>y</a> {{u}}`, " JavaScript:alert(1)"},
		{`<a href={{v}}>y</a>`, "x onmouseover=alert(1)"},
		{`<a href='{{v}}'>y</a>`, "' onmouseover='alert(1)"},
		{"{{a}} {{b}}", "{{b}}"},
		{`Hi {{ name | default: "there" }}, {{x|default:'y'}}`, "Ann"},
		{"<style>@media x{a{b:c}}</style>{{n}}", "1"},
		{"<p>\n  Hi {{name</p>", "x"},
		{"Hi {{first name}}", "x"},
		{"{{a | upper}}", "x"},
		{"{{a | default: there}}", "x"},
		{"<!-- {{c}} -->", "--><img src=x onerror=alert(1)>"},
		{"<script>var x = '{{v}}';</script>", "</script><img src=x>"},
		{`<img alt="a > b" src={{u}}>`, "x onerror=alert(1)"},
		{"<{{tag}}>", "img src=x onerror=alert(1)"},
		{"<td {{attr}}>", "onclick"},
		{"Subject {{s}}", "a\u2028Bcc: x@y.test"},
		{"{{s}}", "caf\xe9"},
		{"x }} y {{ z }}", "\x00"},
	}
	for _, s := range seeds {
		f.Add(s.src, s.value)
	}
	f.Fuzz(func(t *testing.T, src, value string) {
		if len(src) > 4096 || len(value) > 1024 {
			return // the properties do not depend on size; keep each exec fast
		}
		nodes, err := parseTemplate("html", src)
		if err != nil {
			if !errors.Is(err, pipeline.ErrInvalid) {
				t.Fatalf("parse error is not ErrInvalid: %v", err)
			}
			return
		}
		vars := map[string]string{}
		neutral := map[string]string{}
		for _, n := range nodes {
			if n.name != "" {
				vars[n.name] = value
				// Same length, nothing HTML can read as markup.
				neutral[n.name] = strings.Repeat("v", utf8.RuneCountInString(value))
			}
		}
		checkHTMLRender(t, nodes, vars, neutral)

		// Subject, then html and text, through the whole path, as a send renders them.
		r, err := renderStoredTemplate(&store.Template{Name: "t", Subject: src, Text: "x"}, vars)
		if err != nil {
			if e := pipeline.AsError(err); e.HTTPStatus != http.StatusBadRequest {
				t.Fatalf("subject render error is not a 400: %v", err)
			}
		} else if err := pipeline.CheckPrintable("subject", r.Subject); err != nil {
			t.Fatalf("rendered subject is not a header value (%v): %q", err, r.Subject)
		}
		r, err = renderStoredTemplate(&store.Template{Name: "t", HTML: src, Text: src}, vars)
		if err != nil {
			if e := pipeline.AsError(err); e.HTTPStatus != http.StatusBadRequest {
				t.Fatalf("body render error is not a 400: %v", err)
			}
			return
		}
		if want := literalText(t, nodes, vars); r.Text != want {
			t.Fatalf("text part %q, want the values literal: %q", r.Text, want)
		}
	})
}

// checkHTMLRender renders nodes in the html context with vars and with
// neutral (same names, harmless values) and compares.
func checkHTMLRender(t *testing.T, nodes []tplNode, vars, neutral map[string]string) {
	t.Helper()
	missing := map[string]bool{}
	out, err := renderTemplate(nodes, vars, renderHTML, "variables", missing)
	if err != nil || len(missing) > 0 {
		t.Fatalf("html render: %v, missing %v", err, missing)
	}
	var literal strings.Builder
	for _, n := range nodes {
		literal.WriteString(n.literal)
		if n.name == "" {
			continue
		}
		v := escapeHTMLValue(vars[n.name], n.inTag)
		if n.inTag && strings.ContainsAny(v, " \t\n\r\f=\"'`<>") {
			t.Fatalf("value inside a tag can end an attribute: %q", v)
		}
	}
	// Outside tags a backtick, '=' or space is text; inside, the check above.
	for _, c := range []string{"<", ">", `"`, "'"} {
		if got, want := strings.Count(out, c), strings.Count(literal.String(), c); got != want {
			t.Fatalf("rendered html has %d %q, the template's text %d: a value added markup\n%q", got, c, want, out)
		}
	}
	// A value right after "<", "</" or "<!" is where the template puts a
	// tag's name: it decides whether there is a tag, and which (the in-tag
	// check above still keeps it from adding attributes).
	for i := 1; i < len(nodes); i++ {
		lit := nodes[i-1].literal
		if nodes[i].name != "" && (strings.HasSuffix(lit, "<") || strings.HasSuffix(lit, "</") || strings.HasSuffix(lit, "<!")) {
			return
		}
	}
	base, err := renderTemplate(nodes, neutral, renderHTML, "variables", map[string]bool{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := htmlShape(out), htmlShape(base); got != want {
		t.Fatalf("a value changed the document's tags or attributes\nvalue:   %s\nneutral: %s\nhtml: %q", got, want, out)
	}
}

// htmlShape is the sequence of tags, with their number of attributes, of an HTML document,
// as the HTML tokenizer reads it: what a value must not change.
func htmlShape(doc string) string {
	z := xhtml.NewTokenizer(strings.NewReader(doc))
	var b strings.Builder
	for {
		tt := z.Next()
		switch tt {
		case xhtml.ErrorToken:
			return b.String()
		case xhtml.StartTagToken, xhtml.SelfClosingTagToken, xhtml.EndTagToken:
			// Names are left out: a template may put a value where a tag or
			// attribute name goes ("<{{tag}}>", "<td {{attr}}>"), but the
			// value must not add a tag or an attribute.
			_, more := z.TagName()
			attrs := 0
			for more {
				_, _, more = z.TagAttr()
				attrs++
			}
			fmt.Fprintf(&b, "%s(%d attributes)|", tt, attrs)
		case xhtml.CommentToken, xhtml.DoctypeToken:
			b.WriteString(tt.String() + "|")
		}
	}
}

func literalText(t *testing.T, nodes []tplNode, vars map[string]string) string {
	t.Helper()
	var b strings.Builder
	for _, n := range nodes {
		if n.name == "" {
			b.WriteString(n.literal)
		} else {
			b.WriteString(vars[n.name])
		}
	}
	return b.String()
}

// FuzzComposeHeaders composes a message whose subject, From display name, a
// recipient and a custom header take fuzzed values. Either the composition
// is refused with a 400, or the header block has exactly the fields the
// composer sets: a value never adds a header line. Every header line is at
// most 998 octets; the subject and the custom header are 7-bit, in lines
// of at most 76 octets but for one that holds a single word (ASCII as
// sent, or the first encoded-word after a long field name), and decode
// (RFC 2047) to exactly the values sent.
func FuzzComposeHeaders(f *testing.F) {
	f.Add("Héllo", "Acme", "a@x.test", "X-Ref", "42")
	f.Add("s\r\nBcc: evil@x.test", "Acme", "a@x.test", "X-A", "1")
	f.Add("s", "Acme\r\nBcc: v@victim.test", "a@x.test", "X-A", "1")
	f.Add("s", "=?utf-8?q?a=0D=0ABcc:_v@victim.test?=", "a@x.test", "X-A", "1")
	f.Add("s", "Acme", "a@x.test\r\nBcc: evil@x.test", "X-A", "1")
	f.Add("s", "Acme", "\"x\r\nBcc: y@z.test\" <a@x.test>", "X-A", "1")
	f.Add("s", "Acme", "a@x.test", "X-A:\r\nBcc", "v")
	f.Add("s", "Acme", "a@x.test", "List-Unsubscribe", "<mailto:u@acme.test>")
	f.Add("s", "Acme", "a@x.test", "List-Id", "a\rb")
	f.Add("a\u2028Bcc: x@y.test", "Acme", "a@x.test", "X-A", "a\u2028b")
	f.Add(strings.Repeat("long subject words ", 80), "Acme", "a@x.test", "X-Long", strings.Repeat("v", 2000))
	f.Add("=?utf-8?q?x=0D=0ABcc:_y@z.test?=", "Acme", "a@x.test", "X-A", "=?utf-8?b?DQpCY2M6IHlAei50ZXN0?=")
	f.Add("Grüße "+strings.Repeat("ä", 200), "Zoë", "Jürgen <a@x.test>", "X-Name", "Müller  ?=_ "+strings.Repeat("東京", 300))
	f.Add(strings.Repeat("s", 1500), "Acme", "a@x.test", "X-Word", strings.Repeat("w", 950)+" é")
	f.Add("s", "Acme", "a@x.test", "X-"+strings.Repeat("n", 62), "ñ")
	f.Add("s", "Acme", "a@x.test", "List-Id", "Liste für Kunden <kunden.acme.test>")
	f.Add("s", "Acme", "a@x.test", "X-A", "a\x00b")
	f.Add("s", "Acme", "a@x.test", "X-A", "a\u0085b")
	f.Add(strings.Repeat(" ", 3000), "Acme", "a@x.test", "X-A", strings.Repeat(" ", 3000)) // refold panicked on these
	f.Add("s", strings.Repeat(" ", 1500), "a@x.test", "X-A", strings.Repeat("\t", 3000))
	f.Fuzz(func(t *testing.T, subject, fromName, to, hname, hvalue string) {
		if len(subject)+len(fromName)+len(to)+len(hname)+len(hvalue) > 8192 {
			return
		}
		from := "hello@acme.test"
		if fromName != "" {
			from = fromName + " <hello@acme.test>"
		}
		c := Compose{From: from, To: []string{to}, Subject: subject, Text: "t",
			Headers: map[string]string{hname: hvalue}}
		out, err := ComposeMessage(c, testNow)
		if err != nil {
			e := pipeline.AsError(err)
			if e.HTTPStatus != http.StatusBadRequest {
				t.Fatalf("refused with %d, want a 400: %v", e.HTTPStatus, err)
			}
			return
		}
		head, _, ok := bytes.Cut(out.Message, []byte("\r\n\r\n"))
		if !ok {
			t.Fatalf("no header/body separator:\n%q", out.Message)
		}
		for i, line := range strings.Split(string(head), "\r\n") {
			if strings.ContainsAny(line, "\r\n") {
				t.Fatalf("bare CR or LF in header line %d: %q", i, line)
			}
		}
		h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(append(head, "\r\n\r\n"...))))
		if err != nil {
			t.Fatalf("header does not parse: %v\n%q", err, head)
		}
		want := map[string]int{"From": 1, "To": 1, "Subject": 1, "Date": 1, "Mime-Version": 1,
			"Content-Type": 1, "Content-Transfer-Encoding": 1, nettextproto.CanonicalMIMEHeaderKey(hname): 1}
		got := map[string]int{}
		for fields := h.Fields(); fields.Next(); {
			got[nettextproto.CanonicalMIMEHeaderKey(fields.Key())]++
		}
		if len(got) != len(want) {
			t.Fatalf("header fields %v, want %v\n%s", got, want, head)
		}
		for k, n := range want {
			if got[k] != n {
				t.Fatalf("header fields %v, want %v\n%s", got, want, head)
			}
		}
		for i, line := range strings.Split(string(head), "\r\n") {
			if len(line) > 998 {
				t.Fatalf("header line %d has %d octets", i, len(line))
			}
		}
		dec := new(mime.WordDecoder)
		for name, sent := range map[string]string{"Subject": subject, nettextproto.CanonicalMIMEHeaderKey(hname): hvalue} {
			var lines []string
		scan:
			for line := range strings.SplitSeq(string(head), "\r\n") {
				switch {
				case strings.HasPrefix(line, name+":"):
					lines = []string{line}
				case len(lines) > 0 && strings.HasPrefix(line, " "):
					lines = append(lines, line)
				case len(lines) > 0:
					break scan
				}
			}
			for i, line := range lines {
				// A longer line holds one word, which cannot be folded: an
				// ASCII word as sent, or the first encoded-word after a long
				// field name.
				word := strings.TrimPrefix(line, " ")
				if i == 0 {
					word = strings.TrimPrefix(line, name+": ")
				}
				if len(line) > 76 && (strings.Contains(word, " ") || strings.HasPrefix(word, "=?utf-8?q?") && (i > 0 || len(line) > len(name)+2+21)) {
					t.Fatalf("%s: line %d of %d octets: %q", name, i, len(line), line)
				}
				if strings.ContainsFunc(line, func(r rune) bool { return r >= utf8.RuneSelf }) {
					t.Fatalf("%s: 8-bit text %q", name, line)
				}
			}
			value := strings.TrimPrefix(strings.Join(lines, ""), name+": ")
			if strings.Contains(sent, "=?") {
				continue // ASCII written as it is, which a decoder would decode
			}
			if decoded, err := dec.DecodeHeader(value); err != nil || decoded != sent {
				t.Fatalf("%s: %q decodes to %q (%v), want %q", name, value, decoded, err, sent)
			}
		}
	})
}
