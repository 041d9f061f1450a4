package tracking

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	xhtml "golang.org/x/net/html"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
)

// The tests of the tokenizer skip (rewriteHTMLSkipping, skipInert): the
// rewrite with runs of inert markup copied through is the rewrite with the
// tokenizer over every byte, output, links, found links and warnings.

// checkSkipSame fails unless rewriting src skipping every inert run, however
// short, and skipping none give the same result, with the pixel at the
// bottom and at the top, and appended to a dst or not.
func checkSkipSame(t *testing.T, src []byte) {
	t.Helper()
	for _, top := range []bool{false, true} {
		opts := goldenOpts()
		opts.PixelTop = top
		want := rewriteHTMLSkipping(nil, src, &opts, 2, 0)
		got := rewriteHTMLSkipping(nil, src, &opts, 2, 1)
		if !bytes.Equal(got.out, want.out) {
			i := 0
			for i < len(got.out) && i < len(want.out) && got.out[i] == want.out[i] {
				i++
			}
			t.Fatalf("pixel top %v: output differs at byte %d: skipping %q, tokenizer %q\ninput %q", top, i,
				got.out[max(i-30, 0):min(i+30, len(got.out))], want.out[max(i-30, 0):min(i+30, len(want.out))], src)
		}
		// Appended to a dst, as textPart does for a 7bit part: the same
		// after it (the pixel's place is counted from where dst ends).
		dst := []byte("--dst--\r\n")
		if in := rewriteHTMLSkipping(dst, src, &opts, 2, 1); !bytes.Equal(in.out, append(dst, want.out...)) {
			t.Fatalf("pixel top %v: appended to %q: %q\ninput %q", top, dst, in.out, src)
		}
		if !reflect.DeepEqual(got.links, want.links) || !reflect.DeepEqual(got.found, want.found) || !reflect.DeepEqual(got.warnings, want.warnings) {
			t.Fatalf("pixel top %v: links %q / %q, found %v / %v, warnings %q / %q\ninput %q", top,
				got.links, want.links, got.found, want.found, got.warnings, want.warnings, src)
		}
	}
}

// TestRewriteHTMLSkipSame: the golden messages' bytes, the bench messages
// and markup built to trip a skipper that reads tags differently from the
// tokenizer (a '>' or "<a" in quoted values, unquoted values, tags and
// comments cut short by the end, raw text, upper case, "</" before
// non-letters, <a> hidden in names such as <abbr>).
func TestRewriteHTMLSkipSame(t *testing.T) {
	inputs, _ := filepath.Glob(filepath.Join(goldenDir, "*.eml"))
	for _, in := range inputs {
		b, err := os.ReadFile(in)
		if err != nil {
			t.Fatal(err)
		}
		checkSkipSame(t, b)
	}
	for _, b := range skipSeeds() {
		checkSkipSame(t, []byte(b))
	}
	rng := rand.New(rand.NewPCG(7, 11))
	for range 2000 {
		checkSkipSame(t, randomHTML(rng))
	}
}

// skipSeeds are markup a skipper could read differently from the tokenizer.
var skipSeeds = func() []string {
	pad := "<p class=\"x\">" + strings.Repeat("filler text ", 20) + "</p>\r\n"
	return []string{
		"<html><body>" + pad + "<a href=\"https://x.test/1\">one</a>" + pad + "</body></html>",
		"<!DOCTYPE html><html><head><title>t</title></head><body>" + pad + "<A HREF=https://x.test/2>two</A>" + pad + "</BODY></html>",
		"<div title=\"<a href='https://x.test/no'>\">" + pad + "<a href=\"https://x.test/3\">3</a></div>",
		"<div title='x>y' data=\"a>b\">" + pad + "<a href=https://x.test/4 >4</a>",
		"<p>" + pad + "<div title=\"x>y<a href='https://x.test/no'>\">" + pad + "<a href=\"https://x.test/15\">15</a>",
		"<p>" + pad + "<div title='x>y</body>'>" + pad + "</body>",
		"<div a=b>c=d e = 'f>g' /x>" + pad + "<a href=https://x.test/5>5</a>",
		"<p>" + pad + "<!-- <a href=\"https://x.test/no\"> --><a href=\"https://x.test/6\">6</a>",
		"<p>" + pad + "<style>a{}</style><script>var s = \"<a href='https://x.test/no'>\";</script><a href=\"https://x.test/7\">7</a>",
		"<p>" + pad + "<abbr>x</abbr><a\thref=\"https://x.test/8\">8</a></body>" + pad,
		"<p>" + pad + "a < b and c <= d </ e </> <?pi?> <a href=\"https://x.test/9\">9</a>",
		"<p>" + pad + "<div title=\"never closed",
		"<p>" + pad + "<div title=never",
		"<p>" + pad + "<div",
		"<p>" + pad + "</",
		"<p>" + pad + "<",
		"<p>" + pad + "</div",
		"<p>" + pad + "<textarea><a href=\"https://x.test/no\"></textarea><a href=\"https://x.test/10\">10</a>",
		"<p>" + pad + "<plaintext><a href=\"https://x.test/no\">",
		"<p>" + pad + "<p/><br/><img src=x /><p a=/><a href=\"https://x.test/11\" data-sp-notrack>11</a>",
		"<p>" + pad + "</head><body>" + pad + "<body><a href=\"https://x.test/12\">12</a></body>" + pad + "</body>tail",
		"<p>" + pad + "<div =a b==c>" + pad + "<a href=\"https://x.test/13\">13</a>",
		"<p>" + pad + "<p<a href=\"https://x.test/no\">" + pad + "<a href=\"https://x.test/14\">14</a>",
	}
}

// randomHTML is a random mix of the pieces of markup that matter to the
// skipper and the tokenizer, with filler between them.
func randomHTML(rng *rand.Rand) []byte {
	pieces := []string{
		"<p>", "</p>", "<div class=\"a\">", "</div>", "<a href=\"https://x.test/%d\">", "<a href=https://x.test/%d>", "</a>",
		"<A HREF='https://x.test/%d'>", "<body>", "</body>", "<head>", "</head>", "<html>", "<!DOCTYPE html>", "<!-- c -->",
		"<!--", "-->", "<style>", "</style>", "<script>", "</script>", "<title>", "</title>", "<abbr>", "<img src=\"x\">",
		"<br/>", "<p a=/>", " < ", "</ ", "</>", "<?x?>", "<", "</", ">", "'", "\"", "=", " ", "\r\n", "\t", "x",
		"<div title=\"<a href='https://x.test/no'>\">", "<div t='a>b'>",
		"<div t='x>y<a href=\"https://x.test/q\">z'>", "<div t=\"a>b</body>\">", "<div t=\"a>b<style>\">", "<div t=a>b>", "<div =x>", "<a data-sp-notrack href=\"https://x.test/n\">",
		"<p<a>", "<textarea>", "</textarea>", "<plaintext>", "<noscript>", "</noscript>", "<xmp>", "</xmp>",
	}
	var b strings.Builder
	if rng.IntN(2) == 0 {
		b.WriteString("<!DOCTYPE html><html><head></head><body>")
	}
	for n := rng.IntN(60); n > 0; n-- {
		p := pieces[rng.IntN(len(pieces))]
		if strings.Contains(p, "%d") {
			p = fmt.Sprintf(p, rng.IntN(100))
		}
		b.WriteString(p)
		if rng.IntN(3) == 0 {
			b.WriteString(strings.Repeat("lorem ipsum ", rng.IntN(8)))
		}
	}
	return []byte(b.String())
}

// FuzzRewriteHTMLSkip: for any bytes, the rewrite that skips inert markup
// is the rewrite that does not.
func FuzzRewriteHTMLSkip(f *testing.F) {
	for _, s := range skipSeeds() {
		f.Add([]byte(s))
	}
	rng := rand.New(rand.NewPCG(3, 5))
	for range 20 {
		f.Add(randomHTML(rng))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkSkipSame(t, data)
	})
}

// TestPixelTopAfterFirstBody: with the pixel at the top (asked, or for HTML
// over TopPixelThreshold), the rewrite is the rewrite without the pixel with
// the pixel inserted right after the first <body> start tag, as the
// tokenizer finds it in that output, and placed on the way.
func TestPixelTopAfterFirstBody(t *testing.T) {
	var inputs [][]byte
	for _, s := range skipSeeds() {
		inputs = append(inputs, []byte(s))
	}
	rng := rand.New(rand.NewPCG(13, 17))
	for range 2000 {
		inputs = append(inputs, randomHTML(rng))
	}
	big := testkit.LoadMessage(TopPixelThreshold+1000, 20)
	inputs = append(inputs, big[bytes.Index(big, []byte("\r\n\r\n"))+4:])
	withBody := 0
	for _, src := range inputs {
		opts := goldenOpts()
		opts.PixelTop = len(src) <= TopPixelThreshold
		got := rewriteHTML(src, &opts, 0).out
		opts.Opens = false
		plain := rewriteHTML(src, &opts, 0).out
		px := []byte(pixelTag(goldenOpts().PixelURL))
		at := -1
		z := xhtml.NewTokenizer(bytes.NewReader(plain))
		for off := 0; ; {
			tt := z.Next()
			if tt == xhtml.ErrorToken {
				break
			}
			off += len(z.Raw())
			if name, _ := z.TagName(); (tt == xhtml.StartTagToken || tt == xhtml.SelfClosingTagToken) && string(name) == "body" {
				at = off
				break
			}
		}
		if at < 0 {
			continue // no <body>: the place is found at the end, as before
		}
		withBody++
		if want := slices.Concat(plain[:at], px, plain[at:]); !bytes.Equal(got, want) {
			t.Fatalf("input %q:\ngot  %q\nwant %q", src, got, want)
		}
	}
	if withBody < 100 {
		t.Fatalf("only %d inputs with a <body>", withBody)
	}
}
