// Package htmltext turns an HTML body into its text/plain alternative.
package htmltext

import (
	"bytes"
	"strings"

	xhtml "golang.org/x/net/html"
)

// FromHTML makes the text/plain alternative of an HTML body, for senders
// that give only html: text without tags, scripts or styles; paragraphs,
// headings, list items and table rows on their own lines; links followed by
// their URL in parentheses when it differs from the text.
func FromHTML(src string) string {
	z := xhtml.NewTokenizer(strings.NewReader(src))
	var out strings.Builder
	var line bytes.Buffer // current line, whitespace collapsed
	blank := 0            // newlines already emitted at the end of out
	skip := 0             // depth inside script, style, title, template, noscript
	var hrefs []string    // open <a> elements' href

	flush := func(newlines int) {
		s := strings.TrimSpace(line.String())
		line.Reset()
		if s != "" {
			out.WriteString(s)
			blank = 0
		}
		if out.Len() == 0 {
			return
		}
		for blank < newlines {
			out.WriteByte('\n')
			blank++
		}
	}
	write := func(s string) {
		for _, r := range s {
			if r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\f' || r == '\u00a0' {
				if line.Len() > 0 && line.Bytes()[line.Len()-1] != ' ' {
					line.WriteByte(' ')
				}
				continue
			}
			line.WriteRune(r)
		}
	}
	for {
		tt := z.Next()
		switch tt {
		case xhtml.ErrorToken:
			flush(1)
			return strings.TrimRight(out.String(), "\n") + "\n"
		case xhtml.TextToken:
			if skip == 0 {
				write(string(z.Text()))
			}
		case xhtml.StartTagToken, xhtml.SelfClosingTagToken, xhtml.EndTagToken:
			name, hasAttr := z.TagName()
			tag := string(name)
			end := tt == xhtml.EndTagToken
			switch tag {
			// Not "head": its end tag is optional, and what it may hold
			// (meta, link, base and the elements above) shows no text.
			case "script", "style", "title", "template", "noscript":
				if tt == xhtml.StartTagToken {
					skip++
				} else if end && skip > 0 {
					skip--
				}
				continue
			}
			if skip > 0 {
				continue
			}
			switch tag {
			case "br":
				flush(1)
			case "p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "table", "blockquote", "pre", "ul", "ol", "section", "article", "header", "footer":
				flush(2)
			case "tr", "li", "dt", "dd":
				flush(1)
				if tag == "li" && !end {
					line.WriteString("- ")
				}
			case "td", "th":
				write(" ")
			case "hr":
				flush(1)
				line.WriteString("---")
				flush(1)
			case "img":
				for hasAttr {
					var k, v []byte
					k, v, hasAttr = z.TagAttr()
					if string(k) == "alt" && len(v) > 0 {
						write(" " + string(v) + " ")
					}
				}
			case "a":
				if !end {
					href := ""
					for hasAttr {
						var k, v []byte
						k, v, hasAttr = z.TagAttr()
						if string(k) == "href" {
							href = strings.TrimSpace(string(v))
						}
					}
					hrefs = append(hrefs, href)
				} else if n := len(hrefs); n > 0 {
					href := hrefs[n-1]
					hrefs = hrefs[:n-1]
					text := strings.TrimSpace(line.String())
					if href != "" && !strings.HasPrefix(href, "#") && !strings.HasSuffix(text, href) &&
						!strings.HasPrefix(strings.ToLower(href), "javascript:") {
						write(" (" + strings.TrimPrefix(href, "mailto:") + ")")
					}
				}
			}
		}
	}
}
