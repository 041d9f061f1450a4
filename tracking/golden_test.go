package tracking

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/tracking")

const goldenDir = "../testdata/tracking"

// goldenLinks are the links each golden case must report, in order.
var goldenLinks = map[string][]string{
	"01-single-part-7bit": {
		"https://example.com/welcome",
		"http://example.org/path?x=1",
		"https://example.net/unquoted",
		"https://example.com/padded",
		"https://example.com/dup",
	},
	"02-alternative-qp": {
		"https://shop.example.com/item?id=42&utm_source=mail&utm_medium=email&utm_campaign=spring-sale-2024-with-a-very-long-name",
		"https://example.com/unsubscribe?u=1&l=2",
	},
	"03-base64-html":                      {"https://news.example.com/issue/7?ref=mail&x=y"},
	"04-nested-mixed-related-alternative": {"https://example.com/report"},
	"05-html-only-no-body-tag":            {"https://example.com/fragment"},
	"06-iso-8859-1-qp":                    {"https://example.fr/carte?plat=cr\xe8me"},
	"07-links-that-stay":                  {"https://example.com/tracked"},
	"08-html-attachment-and-calendar":     {"https://example.com/event"},
	"09-7bit-long-line":                   {"https://example.com/long"},
	"10-text-links-secrets-unsubscribe": {
		"https://example.com/news?issue=7", "https://example.com/archive", "https://example.com/angle", "HTTPS://EXAMPLE.COM/UPPER",
		"https://example.com/verify?code=SplxlOBeZQQYbYS6WxSbIA", "https://example.com/news?issue=7",
		"https://example.com/sale?code=SUMMER20&utm_source=mail",
	},
}

// goldenTextLinks are the cases rewritten with TextLinks, as the pipeline
// does whenever clicks are tracked.
var goldenTextLinks = map[string]bool{"10-text-links-secrets-unsubscribe": true}

func TestGolden(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join(goldenDir, "*.eml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(inputs) < len(goldenLinks) {
		t.Fatalf("found %d inputs in %s, want %d", len(inputs), goldenDir, len(goldenLinks))
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".eml")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			opts := goldenOpts()
			opts.TextLinks = goldenTextLinks[name]
			out, res := rewriteBytes(t, src, opts)

			golden := strings.TrimSuffix(in, ".eml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, out, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(out, want) {
				t.Errorf("output differs from %s (run with -update after checking)\n--- got:\n%s", golden, out)
			}

			wantLinks, ok := goldenLinks[name]
			if !ok {
				t.Fatalf("no expected links for %s in goldenLinks", name)
			}
			if !slices.Equal(res.Links, wantLinks) {
				t.Errorf("Links = %q, want %q", res.Links, wantLinks)
			}
			if len(res.Warnings) > 0 {
				t.Errorf("unexpected warnings: %q", res.Warnings)
			}
			if !res.Changed {
				t.Error("Changed = false")
			}
			if bytes.Contains(out, []byte("\n")) && bytes.Count(out, []byte("\n")) != bytes.Count(out, []byte("\r\n")) {
				t.Error("output has bare LF line endings")
			}
			checkInvariantsText(t, src, out, res, opts.TextLinks)
		})
	}
}
