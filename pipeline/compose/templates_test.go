package compose

import (
	"fmt"
	"strings"
	"testing"

	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

func renderForTest(t *testing.T, tpl store.Template, vars map[string]string) (*renderedTemplate, error) {
	t.Helper()
	if tpl.Name == "" {
		tpl.Name = "t"
	}
	return renderStoredTemplate(&tpl, vars)
}

func TestTemplateSubstitution(t *testing.T) {
	t.Run("values are escaped in html, literal in text and subject", func(t *testing.T) {
		r, err := renderForTest(t, store.Template{Subject: "Hi {{name}}", HTML: "<p>Hello {{ name }}</p>", Text: "Hello {{name}}"},
			map[string]string{"name": "<script>alert(1)</script> & co"})
		if err != nil {
			t.Fatal(err)
		}
		if r.HTML != "<p>Hello &lt;script&gt;alert(1)&lt;/script&gt; &amp; co</p>" {
			t.Errorf("html: %q", r.HTML)
		}
		if r.Text != "Hello <script>alert(1)</script> & co" || r.Subject != "Hi <script>alert(1)</script> & co" {
			t.Errorf("text %q subject %q", r.Text, r.Subject)
		}
	})
	t.Run("one pass: a value holding a placeholder stays literal", func(t *testing.T) {
		r, err := renderForTest(t, store.Template{Text: "{{a}} {{b}}"}, map[string]string{"a": "{{b}}", "b": "B"})
		if err != nil || r.Text != "{{b}} B" {
			t.Fatalf("%q %v", r.Text, err)
		}
	})
	t.Run("defaults, in both quote styles", func(t *testing.T) {
		r, err := renderForTest(t, store.Template{Text: `Hi {{ name | default: "there" }}, {{x|default:'y'}}`}, nil)
		if err != nil || r.Text != "Hi there, y" {
			t.Fatalf("%q %v", r.Text, err)
		}
		r, err = renderForTest(t, store.Template{Text: `Hi {{ name | default: "there" }}`}, map[string]string{"name": "Ann"})
		if err != nil || r.Text != "Hi Ann" {
			t.Fatalf("%q %v", r.Text, err)
		}
	})
	t.Run("missing variables are named, all of them", func(t *testing.T) {
		_, err := renderForTest(t, store.Template{Subject: "{{first}}", Text: "{{second}} {{first}}"}, nil)
		e := pipeline.AsError(err)
		if err == nil || e.HTTPStatus != 400 || !strings.Contains(e.Message, `"first"`) || !strings.Contains(e.Message, `"second"`) {
			t.Fatalf("%v", err)
		}
	})
	t.Run("a line break in a subject value is refused", func(t *testing.T) {
		_, err := renderForTest(t, store.Template{Subject: "Hi {{name}}", Text: "x"}, map[string]string{"name": "x\r\nBcc: v@victim.test"})
		if err == nil || pipeline.AsError(err).HTTPStatus != 400 || !strings.Contains(pipeline.AsError(err).Message, "variables.name") {
			t.Fatalf("%v", err)
		}
	})
	t.Run("script URLs in attributes are neutralised, unquoted attributes cannot be split", func(t *testing.T) {
		r, err := renderForTest(t, store.Template{HTML: `<a href="{{u}}">x</a> <a href={{v}}>y</a> {{u}}`},
			map[string]string{"u": " JavaScript:alert(1)", "v": "x onmouseover=alert(1)"})
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(strings.ToLower(r.HTML), `href="javascript`) || !strings.Contains(r.HTML, "about:invalid") {
			t.Errorf("script URL kept: %s", r.HTML)
		}
		if strings.Contains(r.HTML, "x onmouseover=") {
			t.Errorf("attribute split: %s", r.HTML)
		}
		if !strings.HasSuffix(r.HTML, " JavaScript:alert(1)") {
			t.Errorf("text outside tags should only be escaped: %s", r.HTML)
		}
	})
	t.Run("}} alone is text (CSS)", func(t *testing.T) {
		r, err := renderForTest(t, store.Template{HTML: "<style>@media x{a{b:c}}</style>{{n}}"}, map[string]string{"n": "1"})
		if err != nil || r.HTML != "<style>@media x{a{b:c}}</style>1" {
			t.Fatalf("%q %v", r.HTML, err)
		}
	})
	t.Run("large template, many placeholders and variables", func(t *testing.T) {
		// A template of 1 MB (the limit) with 100,000 placeholders, and
		// 1,000 variables (the limit), each a value that holds a placeholder.
		vars := map[string]string{}
		for i := range 1000 {
			vars[fmt.Sprintf("v%03d", i)] = "{{v000}}"
		}
		var b strings.Builder
		for i := range 100_000 {
			fmt.Fprintf(&b, "{{v%03d}} ", i%1000)
		}
		html := b.String() + strings.Repeat(".", MaxTemplateBody-b.Len())
		r, err := renderForTest(t, store.Template{HTML: html}, vars)
		if err != nil || strings.Count(r.HTML, "{{v000}}") != 100_000 || len(r.HTML) != len(html) {
			t.Fatalf("%d bytes, %v", len(r.HTML), err)
		}
		vars["one_more"] = "x"
		if _, err := renderForTest(t, store.Template{HTML: html}, vars); pipeline.AsError(err).HTTPStatus != 400 {
			t.Fatalf("1,001 variables: %v", err)
		}
		if _, err := checkTemplate(&store.Template{Name: "n", HTML: html + "."}); pipeline.AsError(err).HTTPStatus != 400 {
			t.Fatalf("1 MB + 1: %v", err)
		}
	})
}

func TestTemplateValidation(t *testing.T) {
	cases := []struct {
		name string
		tpl  store.Template
		want string
	}{
		{"unclosed tag, with its position", store.Template{Name: "n", HTML: "<p>\n  Hi {{name</p>"}, "html: unclosed {{ at line 2, column 6"},
		{"invalid placeholder", store.Template{Name: "n", Text: "Hi {{first name}}"}, "text: invalid placeholder {{first name}} at line 1, column 4"},
		{"unknown filter", store.Template{Name: "n", Text: "{{a | upper}}"}, "invalid placeholder"},
		{"unquoted default", store.Template{Name: "n", Text: "{{a | default: there}}"}, "invalid placeholder"},
		{"unclosed in subject", store.Template{Name: "n", Subject: "Hi {{", Text: "x"}, "subject: unclosed {{ at line 1, column 4"},
		{"line break in subject", store.Template{Name: "n", Subject: "a\r\nBcc: x@y.test", Text: "x"}, "subject: must not contain line breaks"},
		{"no name", store.Template{Text: "x"}, "name: a template name is required"},
		{"no body", store.Template{Name: "n", Subject: "s"}, "html or text"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := checkTemplate(&c.tpl)
			if err == nil || pipeline.AsError(err).HTTPStatus != 400 || !strings.Contains(pipeline.AsError(err).Message, c.want) {
				t.Fatalf("got %v, want a 400 containing %q", err, c.want)
			}
		})
	}
	vars := TemplateVariables(&store.Template{Name: "n", Subject: "{{b}}", HTML: "{{a}} {{ b | default: 'x' }}"})
	if strings.Join(vars, ",") != "a,b" {
		t.Errorf("variables %v", vars)
	}
}
