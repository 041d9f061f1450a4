package tracking

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestFoundLinks: with clicks, Result.Found lists every link of the parts
// rewritten, in document order, the untracked ones with why: what a
// preview shows.
func TestFoundLinks(t *testing.T) {
	tracked := func(url string, index int) Link { return Link{URL: url, Index: index} }
	kept := func(url, reason string) Link { return Link{URL: url, Index: -1, Reason: reason} }
	for name, want := range map[string][]Link{
		"07-links-that-stay": {
			kept("mailto:help@example.com", "a mailto: link"),
			kept("tel:+15555550100", "a tel: link"),
			kept("sms:+15555550100", "a sms: link"),
			kept("#top", ReasonRelative),
			kept("/relative/path", ReasonRelative),
			kept("javascript:alert(1)", "a javascript: link"),
			kept("ftp://example.com/file", "a ftp: link"),
			// <a name="anchor-only"> has no href: not a link.
			kept("https://example.com/private", ReasonNoTrack),
			kept("https://example.com/private2", ReasonNoTrack),
			tracked("https://example.com/tracked", 0),
		},
		"10-text-links-secrets-unsubscribe": {
			// The text part.
			kept("https://example.com/reset?token=abc123&u=42", ReasonSecret),
			tracked("https://example.com/news?issue=7", 0),
			tracked("https://example.com/archive", 1),
			tracked("https://example.com/angle", 2),
			tracked("HTTPS://EXAMPLE.COM/UPPER", 3),
			kept("https://example.com/unsub?u=42&l=news", ReasonUnsubscribe),
			// The HTML part.
			kept("https://example.com/reset?token=abc123&u=42", ReasonSecret),
			tracked("https://example.com/verify?code=SplxlOBeZQQYbYS6WxSbIA", 4),
			kept("https://s3.example.com/f.pdf?X-Amz-Expires=60&X-Amz-Signature=ff", ReasonSecret),
			tracked("https://example.com/news?issue=7", 5),
			tracked("https://example.com/sale?code=SUMMER20&utm_source=mail", 6),
			kept("https://example.com/unsub?u=42&l=news", ReasonUnsubscribe),
		},
	} {
		t.Run(name, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join(goldenDir, name+".eml"))
			if err != nil {
				t.Fatal(err)
			}
			opts := goldenOpts()
			opts.TextLinks = goldenTextLinks[name]
			_, res := rewriteBytes(t, in, opts)
			if !slices.Equal(res.Found, want) {
				t.Errorf("Found:\n%+v\nwant\n%+v", res.Found, want)
			}
			checkFound(t, res)

			// Opens only: no link is looked at.
			opts.Clicks = false
			if _, res := rewriteBytes(t, in, opts); res.Found != nil {
				t.Errorf("opens only: Found %+v", res.Found)
			}
		})
	}
}

// TestFoundLinksOfPartsLeftUnchanged: a part whose rewrite is given up
// keeps its links, and Found says so; a part with nothing to rewrite still
// lists its untracked links.
func TestFoundLinksOfPartsLeftUnchanged(t *testing.T) {
	// The re-encoded part would hold a line starting with the boundary
	// (the soft line break keeps it off a line of the input).
	line := `<a href="https://e=` + "\n" + `xample.com/x">x</a>` + strings.Repeat("a", 17) + "--xyz more"
	in := crlfText("Content-Type: multipart/alternative; boundary=xyz\n\n--xyz\n" +
		"Content-Type: text/html\nContent-Transfer-Encoding: quoted-printable\n\n" + line + "\n--xyz--\n")
	opts := goldenOpts()
	opts.Opens = false
	_, res := rewriteBytes(t, in, opts)
	if want := []Link{{URL: "https://example.com/x", Index: -1, Reason: ReasonPartKept}}; !slices.Equal(res.Found, want) || res.Links != nil ||
		len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "boundary") {
		t.Errorf("collision: Found %+v, Links %q, warnings %q", res.Found, res.Links, res.Warnings)
	}

	in = htmlMsg("", `<a href="mailto:a@example.com">m</a> <a href="https://e.test/r?token=t">r</a>`+"\n")
	out, res := rewriteBytes(t, in, opts)
	want := []Link{{URL: "mailto:a@example.com", Index: -1, Reason: "a mailto: link"}, {URL: "https://e.test/r?token=t", Index: -1, Reason: ReasonSecret}}
	if res.Changed || string(out) != string(in) || !slices.Equal(res.Found, want) {
		t.Errorf("nothing tracked: changed %v, Found %+v", res.Changed, res.Found)
	}
}

func TestSchemeOf(t *testing.T) {
	for u, want := range map[string]string{
		"mailto:a@b": "mailto", "HTTPS://x": "https", "x-app+v1.2:open": "x-app+v1.2",
		"/a:b": "", "#top": "", ":x": "", "1a:b": "", "a b:c": "", "no-colon": "", "?q=a:b": "",
	} {
		if got := schemeOf(u); got != want {
			t.Errorf("schemeOf(%q) = %q, want %q", u, got, want)
		}
	}
}
