package compose

import (
	"testing"

	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// TestTemplateValueCannotAddAttribute guards the html tag state of the
// template parser: a value inside a tag is escaped so that it cannot end an
// unquoted attribute, even when an earlier attribute value holds a '>' (the
// parser used to take it for the end of the tag) and when the value stands
// where the tag name goes. FuzzTemplate found both.
func TestTemplateValueCannotAddAttribute(t *testing.T) {
	cases := []struct {
		name, html, value, want string
	}{
		{"'>' in a double-quoted attribute before the value", `<img alt="a > b" src={{v}}>`, "x onerror=alert(1)",
			`<img alt="a > b" src=x&#32;onerror&#61;alert(1)>`},
		{"'>' in a single-quoted attribute before the value", `<img alt='a > b' src={{v}}>`, "x onerror=alert(1)",
			`<img alt='a > b' src=x&#32;onerror&#61;alert(1)>`},
		{"value inside the quoted attribute that holds the '>'", `<a title="1 > 0 {{v}}" href=x>`, `" onclick="y`,
			`<a title="1 > 0 &#34;&#32;onclick&#61;&#34;y" href=x>`},
		{"value as the tag name", `<{{v}}>`, "img src=x onerror=alert(1)",
			`<img&#32;src&#61;x&#32;onerror&#61;alert(1)>`},
		{"text after the tag is escaped as text", `<img alt="a > b"> {{v}}`, "x y=z",
			`<img alt="a > b"> x y=z`},
		{"an apostrophe in text does not open a quote", `<p>it's</p> {{v}}`, "x y=z",
			`<p>it's</p> x y=z`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := renderForTest(t, store.Template{HTML: c.html}, map[string]string{"v": c.value})
			if err != nil {
				t.Fatal(err)
			}
			if r.HTML != c.want {
				t.Errorf("got  %s\nwant %s", r.HTML, c.want)
			}
		})
	}
}
