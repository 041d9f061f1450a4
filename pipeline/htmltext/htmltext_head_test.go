package htmltext

import "testing"

// TestFromHTMLKeepsBodyAfterUnclosedHead guards the head handling: HTML
// lets a document omit </head>, and FromHTML used to skip everything after
// an unclosed <head>, so such a body got an empty text part. What the head
// holds (title, style, script) is still left out.
func TestFromHTMLKeepsBodyAfterUnclosedHead(t *testing.T) {
	cases := map[string]string{
		"<html><head><meta charset=utf-8><body><p>Hello</p></body></html>":                      "Hello\n",
		"<head><title>T</title><style>p{}</style><script>x()</script><p>Hello</p>":              "Hello\n",
		"<html><head><title>T</title></head><body><p>Hello</p></body></html>":                   "Hello\n",
		"<head><link rel=stylesheet href=x.css><base href=https://x.test/></head>Hi <b>you</b>": "Hi you\n",
	}
	for in, want := range cases {
		if got := FromHTML(in); got != want {
			t.Errorf("FromHTML(%q) = %q, want %q", in, got, want)
		}
	}
}
