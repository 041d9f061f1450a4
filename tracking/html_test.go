package tracking

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	xhtml "golang.org/x/net/html"
)

// px is the pixel tag the tests expect for testPixelURL.
const px = `<img src="https://t.example.test/v1/track/open/em_test" width="1" height="1" alt="" style="display:none;border:0;width:1px;height:1px" />`

func TestRewriteHTML(t *testing.T) {
	const c0 = `"https://t.example.test/v1/track/click/c0"`
	const c1 = `"https://t.example.test/v1/track/click/c1"`
	tests := []struct {
		name   string
		in     string
		opens  bool
		clicks bool
		want   string
		links  []string
	}{
		{"pixel before body end", "<html><body><p>x</p></body></html>", true, false,
			"<html><body><p>x</p>" + px + "</body></html>", nil},
		{"pixel before last body end", "<body>a</body>b</BODY >c", true, false,
			"<body>a</body>b" + px + "</BODY >c", nil},
		{"pixel at end without body", "<p>x</p>\r\n", true, false, "<p>x</p>\r\n" + px, nil},
		{"pixel in empty document", "", true, false, px, nil},
		{"pixel not inside unclosed title", "<p>x</p><title>t", true, false, "<p>x</p>" + px + "<title>t", nil},
		{"pixel not inside unclosed textarea", "<textarea></body>", true, false, px + "<textarea></body>", nil},
		{"pixel after closed style", "<style>p{}</style>", true, false, "<style>p{}</style>" + px, nil},
		{"pixel not inside cut tag", "<p>x</p><a href", true, false, "<p>x</p>" + px + "<a href", nil},
		{"pixel not inside cut comment", "<p>x</p><!-- c", true, false, "<p>x</p>" + px + "<!-- c", nil},
		{"pixel not after trailing </", "<p>x</p></", true, false, "<p>x</p>" + px + "</", nil},
		{"pixel after closed comment", "<p>x</p><!-- c -->", true, false, "<p>x</p><!-- c -->" + px, nil},
		{"body end in comment ignored", "<!-- </body> --><p>x", true, false, "<!-- </body> --><p>x" + px, nil},

		{"double quoted", `<a href="https://e.test/a">x</a>`, false, true, `<a href=` + c0 + `>x</a>`, []string{"https://e.test/a"}},
		{"single quoted", `<a href='https://e.test/a'>x</a>`, false, true, `<a href=` + c0 + `>x</a>`, []string{"https://e.test/a"}},
		{"unquoted", `<a href=https://e.test/a>x</a>`, false, true, `<a href=` + c0 + `>x</a>`, []string{"https://e.test/a"}},
		{"unquoted then attr", `<a href=https://e.test/a class=b>x</a>`, false, true, `<a href=` + c0 + ` class=b>x</a>`, []string{"https://e.test/a"}},
		{"spaces around =", "<a href = \"https://e.test/a\" >x</a>", false, true, "<a href = " + c0 + " >x</a>", []string{"https://e.test/a"}},
		{"upper case", `<A HREF="HTTPS://E.TEST/A">x</A>`, false, true, `<A HREF=` + c0 + `>x</A>`, []string{"HTTPS://E.TEST/A"}},
		{"entities decoded", `<a href="https://e.test/?a=1&amp;b=2&#38;c=&lt;">x</a>`, false, true, `<a href=` + c0 + `>x</a>`, []string{"https://e.test/?a=1&b=2&c=<"}},
		{"newline in attribute", "<a\r\nclass=\"k\"\r\nhref=\"https://e.test/a\"\r\n>x</a>", false, true, "<a\r\nclass=\"k\"\r\nhref=" + c0 + "\r\n>x</a>", []string{"https://e.test/a"}},
		{"trimmed", "<a href=\"\t https://e.test/a \n\">x</a>", false, true, `<a href=` + c0 + `>x</a>`, []string{"https://e.test/a"}},
		{"self-closing", `<a href="https://e.test/a"/>`, false, true, `<a href=` + c0 + `/>`, []string{"https://e.test/a"}},
		{"first of duplicate href", `<a href="https://e.test/1" HREF="https://e.test/2">x</a>`, false, true,
			`<a href=` + c0 + ` HREF="https://e.test/2">x</a>`, []string{"https://e.test/1"}},
		{"order and text kept", `<p>A <a class=x href="http://e.test/1" id=y><b>one</b></a> <a href="https://e.test/2">two</a></p>`, false, true,
			`<p>A <a class=x href=` + c0 + ` id=y><b>one</b></a> <a href=` + c1 + `>two</a></p>`, []string{"http://e.test/1", "https://e.test/2"}},
		{"non-http kept", `<a href="mailto:x@e.test">m</a><a href="tel:1">t</a><a href="sms:1">s</a><a href="#f">f</a><a href="/r">r</a><a href="javascript:void(0)">j</a><a href="http:">h</a><a>n</a><a href>e</a>`, false, true,
			`<a href="mailto:x@e.test">m</a><a href="tel:1">t</a><a href="sms:1">s</a><a href="#f">f</a><a href="/r">r</a><a href="javascript:void(0)">j</a><a href="http:">h</a><a>n</a><a href>e</a>`, nil},
		{"other tags kept", `<link href="https://e.test/s.css"><img src="https://e.test/i.png"><area href="https://e.test/x"><abbr href="https://e.test/y">`, false, true,
			`<link href="https://e.test/s.css"><img src="https://e.test/i.png"><area href="https://e.test/x"><abbr href="https://e.test/y">`, nil},
		{"links in raw text kept", `<style>a[href="https://e.test/"]{}</style><script>"<a href='https://e.test/'>"</script><textarea><a href="https://e.test/"></textarea>`, false, true,
			`<style>a[href="https://e.test/"]{}</style><script>"<a href='https://e.test/'>"</script><textarea><a href="https://e.test/"></textarea>`, nil},
		{"links in comments kept", `<!--[if mso]><a href="https://e.test/">x</a><![endif]-->`, false, true,
			`<!--[if mso]><a href="https://e.test/">x</a><![endif]-->`, nil},

		{"notrack last", `<a href="https://e.test/a" data-sp-notrack>x</a>`, false, true, `<a href="https://e.test/a">x</a>`, nil},
		{"notrack first", `<a data-sp-notrack href="https://e.test/a">x</a>`, false, true, `<a href="https://e.test/a">x</a>`, nil},
		{"notrack with value", `<a class=k DATA-SP-NOTRACK="true" href="https://e.test/a">x</a>`, false, true, `<a class=k href="https://e.test/a">x</a>`, nil},
		{"notrack after unquoted, self-closing", `<a href=https://e.test/a data-sp-notrack/>`, false, true, `<a href=https://e.test/a />`, nil},
		{"notrack before attribute without space", `<a data-sp-notrack=""1>`, false, true, `<a 1>`, nil},
		{"notrack after slash", `<a/data-sp-notrack=1 x>`, false, true, `<a/x>`, nil},
		{"notrack twice", `<a data-sp-notrack href=https://e.test/a data-sp-notrack>x</a>`, false, true, `<a href=https://e.test/a>x</a>`, nil},
		{"notrack does not shift index", `<a href="https://e.test/1" data-sp-notrack>1</a><a href="https://e.test/2">2</a>`, false, true,
			`<a href="https://e.test/1">1</a><a href=` + c0 + `>2</a>`, []string{"https://e.test/2"}},
		{"notrack removed with opens only", `<a href="https://e.test/1" data-sp-notrack>1</a><a href="https://e.test/2">2</a>`, true, false,
			`<a href="https://e.test/1">1</a><a href="https://e.test/2">2</a>` + px, nil},

		{"secret link kept", `<a href="https://e.test/reset?u=1&amp;Token=x">r</a><a href="https://e.test/a">a</a>`, false, true,
			`<a href="https://e.test/reset?u=1&amp;Token=x">r</a><a href=` + c0 + `>a</a>`, []string{"https://e.test/a"}},
		{"secret link forced", `<a data-sp-track href="https://e.test/v?otp=1">v</a>`, false, true, `<a href=` + c0 + `>v</a>`, []string{"https://e.test/v?otp=1"}},
		{"forced, attribute last", `<a href="https://e.test/v?sig=1" data-sp-track>v</a>`, false, true, `<a href=` + c0 + `>v</a>`, []string{"https://e.test/v?sig=1"}},
		{"forced without clicks", `<a href="https://e.test/v?sig=1" data-sp-track>v</a>`, true, false, `<a href="https://e.test/v?sig=1">v</a>` + px, nil},
		{"notrack beats track", `<a data-sp-track data-sp-notrack href="https://e.test/a">a</a>`, false, true, `<a href="https://e.test/a">a</a>`, nil},

		{"both", "<body><a href='https://e.test/a'>x</a></body>", true, true, "<body><a href=" + c0 + ">x</a>" + px + "</body>", []string{"https://e.test/a"}},
		{"bytes kept", "<p\tclass=x>caf\xe9 &eacute; &amp;<br/><BR></p>\x00<a href='https://e.test/\xe9'>x</a>", false, true,
			"<p\tclass=x>caf\xe9 &eacute; &amp;<br/><BR></p>\x00<a href=" + c0 + ">x</a>", []string{"https://e.test/\xe9"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := goldenOpts()
			opts.Opens, opts.Clicks = tt.opens, tt.clicks
			r := rewriteHTML([]byte(tt.in), &opts, 0)
			if string(r.out) != tt.want {
				t.Errorf("got\n%s\nwant\n%s", r.out, tt.want)
			}
			if !slices.Equal(r.links, tt.links) {
				t.Errorf("links = %q, want %q", r.links, tt.links)
			}
			if len(r.warnings) > 0 {
				t.Errorf("warnings: %q", r.warnings)
			}
			checkHTMLTokens(t, []byte(tt.in), r, &opts, 0)
		})
	}
}

func TestRewriteHTMLTopPixel(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"after body", "<!DOCTYPE html><html><head><title>t</title></head><body class=x><p>a</p></body></html>",
			"<!DOCTYPE html><html><head><title>t</title></head><body class=x>" + px + "<p>a</p></body></html>"},
		{"after head without body", "<html><head><style>p{}</style></head><p>a</p>",
			"<html><head><style>p{}</style></head>" + px + "<p>a</p>"},
		{"after the prolog", "<!doctype html>\r\n<!-- c -->\r\n<html><p>a</p>",
			"<!doctype html>\r\n<!-- c -->\r\n<html>" + px + "<p>a</p>"},
		{"fragment", "<p>a</p>", px + "<p>a</p>"},
		{"first body wins", "<body><p>a</p><body>", "<body>" + px + "<p>a</p><body>"},
		{"not inside an unclosed comment", "<!-- c", px + "<!-- c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := goldenOpts()
			opts.Clicks, opts.PixelTop = false, true
			r := rewriteHTML([]byte(tt.in), &opts, 0)
			if string(r.out) != tt.want {
				t.Errorf("got\n%s\nwant\n%s", r.out, tt.want)
			}
			checkHTMLTokens(t, []byte(tt.in), r, &opts, 0)
		})
	}

	// Over TopPixelThreshold the pixel goes to the top without being asked.
	big := "<html><body><p>" + strings.Repeat("x", TopPixelThreshold) + "</p></body></html>"
	opts := goldenOpts()
	r := rewriteHTML([]byte(big), &opts, 0)
	if !bytes.HasPrefix(r.out, []byte("<html><body>"+px+"<p>xxx")) {
		t.Errorf("large HTML: pixel not at the top: %.80q", r.out)
	}
	small := "<html><body><p>x</p></body></html>"
	if r := rewriteHTML([]byte(small), &opts, 0); !bytes.HasSuffix(r.out, []byte(px+"</body></html>")) {
		t.Errorf("small HTML: pixel not at the bottom: %q", r.out)
	}
}

func TestRewriteHTMLEscapesURLs(t *testing.T) {
	opts := Options{
		Opens:    true,
		Clicks:   true,
		PixelURL: `https://t.example.test/o?a=1&b="2"`,
		ClickURL: func(i int, dest string) string {
			return fmt.Sprintf("https://t.example.test/c%d?x=1&y=2", i)
		},
	}
	in := `<body><a href="https://e.test/?a=1&amp;b=2">x</a></body>`
	r := rewriteHTML([]byte(in), &opts, 3)
	want := `<body><a href="https://t.example.test/c3?x=1&amp;y=2">x</a><img src="https://t.example.test/o?a=1&amp;b=&#34;2&#34;" width="1" height="1" alt="" style="display:none;border:0;width:1px;height:1px" /></body>`
	if string(r.out) != want {
		t.Errorf("got\n%s\nwant\n%s", r.out, want)
	}
	if !slices.Equal(r.links, []string{"https://e.test/?a=1&b=2"}) {
		t.Errorf("links = %q", r.links)
	}
	if bytes.Contains(r.out, []byte("&amp;amp;")) {
		t.Error("double escaping")
	}
}

// TestScanAttrs checks the attribute scanner against the tokenizer it
// mirrors on awkward tags.
func TestScanAttrs(t *testing.T) {
	tags := []string{
		`<a>`, `<a/>`, `<a href>`, `<a href=>`, `<a href= >`, `<a =x>`, `<a ==x>`, `<a x==y>`,
		`<a href="x"class=y>`, `<a href='x'/>`, `<a href=x/>`, `<a / href=x>`, `<a/href=x>`,
		`<a href="x" href='y' HREF=z>`, "<a\fhref\f=\fx\f>", `<a b c d>`, `<a b= "c" d = 'e' f=g>`,
		`<a "x"=y>`, `<a x"y=z>`, `<a b='>'>`, `<a b=">" c>`, `<a b=c"d>`, `<a b=/>`, `<a b/c=d>`,
	}
	for _, tag := range tags {
		z := xhtml.NewTokenizer(strings.NewReader(tag))
		if tt := z.Next(); tt != xhtml.StartTagToken && tt != xhtml.SelfClosingTagToken {
			t.Fatalf("%q: token %v", tag, tt)
		}
		var want []string
		for more := true; more; {
			var k, v []byte
			k, v, more = z.TagAttr()
			if k != nil {
				want = append(want, string(k)+"="+string(v))
			}
		}
		var got []string
		attrs := scanAttrs([]byte(tag))
		for i, a := range attrs {
			key := []byte(tag[a.keyStart:a.keyEnd])
			if len(key) == 0 || isDuplicate([]byte(tag), attrs[:i], key) {
				continue
			}
			val := ""
			if a.valueStart >= 0 {
				val = strings.Trim(tag[a.valueStart:a.end], `"'`)
			}
			got = append(got, strings.ToLower(string(key))+"="+val)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%q: scanAttrs found %q, tokenizer %q", tag, got, want)
		}
	}
}

// tokenInfo is one token of a document, with its attributes.
type tokenInfo struct {
	tt    xhtml.TokenType
	raw   string
	name  string
	attrs []xhtml.Attribute
}

func tokenize(b []byte) []tokenInfo {
	var toks []tokenInfo
	z := xhtml.NewTokenizer(bytes.NewReader(b))
	for {
		tt := z.Next()
		ti := tokenInfo{tt: tt, raw: string(z.Raw())}
		if tt == xhtml.ErrorToken {
			if ti.raw != "" {
				toks = append(toks, ti)
			}
			return toks
		}
		tok := z.Token()
		ti.name, ti.attrs = tok.Data, tok.Attr
		toks = append(toks, ti)
	}
}

// checkHTMLTokens checks that r, the result of rewriting in, differs from in
// exactly by the rewritten links and the pixel: tokenizing both gives the
// same tokens, except that <a> tags may lose data-sp-notrack and
// data-sp-track and (without data-sp-notrack) have their href replaced by
// the click URL of the next link, and that the output has one extra pixel
// token if opts.Opens.
func checkHTMLTokens(t testing.TB, in []byte, r partResult, opts *Options, first int) {
	t.Helper()
	ti, to := tokenize(in), tokenize(r.out)
	if opts.Opens {
		i := slices.IndexFunc(to, func(x tokenInfo) bool { return x.raw == pixelTag(opts.PixelURL) })
		if i < 0 {
			t.Fatalf("no pixel token in output %q", r.out)
		}
		to = slices.Delete(to, i, i+1)
	}
	if len(ti) != len(to) {
		t.Fatalf("input has %d tokens, output %d (pixel removed)\nin:  %q\nout: %q", len(ti), len(to), in, r.out)
	}
	link := 0
	for i := range ti {
		a, b := ti[i], to[i]
		if a.raw == b.raw {
			continue
		}
		isTag := func(x tokenInfo) bool {
			return (x.tt == xhtml.StartTagToken || x.tt == xhtml.SelfClosingTagToken) && x.name == "a"
		}
		if !isTag(a) || !isTag(b) {
			t.Fatalf("token %d changed: %q -> %q", i, a.raw, b.raw)
		}
		want := slices.DeleteFunc(slices.Clone(a.attrs), func(x xhtml.Attribute) bool { return x.Key == noTrackAttr || x.Key == trackAttr })
		notrack := slices.ContainsFunc(a.attrs, func(x xhtml.Attribute) bool { return x.Key == noTrackAttr })
		j := slices.IndexFunc(want, func(x xhtml.Attribute) bool { return x.Key == "href" })
		k := slices.IndexFunc(b.attrs, func(x xhtml.Attribute) bool { return x.Key == "href" })
		rewritten := j >= 0 && k >= 0 && want[j].Val != b.attrs[k].Val
		if len(want) == len(a.attrs) && !rewritten {
			t.Fatalf("token %d changed without a link or a removed attribute: %q -> %q", i, a.raw, b.raw)
		}
		if rewritten {
			if notrack || link >= len(r.links) {
				t.Fatalf("token %d: link rewritten though not tracked: %q -> %q", i, a.raw, b.raw)
			}
			if dest := strings.Trim(want[j].Val, " \t\n\f\r"); dest != r.links[link] || !isHTTP(dest) {
				t.Fatalf("link %d: href %q reported as %q", link, want[j].Val, r.links[link])
			}
			want[j].Val = opts.ClickURL(first+link, r.links[link])
			link++
		}
		if fmt.Sprint(want) != fmt.Sprint(b.attrs) {
			t.Fatalf("token %d: attributes %v, want %v (%q -> %q)", i, b.attrs, want, a.raw, b.raw)
		}
	}
	if link != len(r.links) {
		t.Fatalf("%d links reported, %d found rewritten", len(r.links), link)
	}
}
