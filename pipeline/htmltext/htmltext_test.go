package htmltext

import "testing"

func TestFromHTML(t *testing.T) {
	cases := map[string]string{
		"<p>a</p><p>b</p>":                  "a\n\nb\n",
		"a<br>b":                            "a\nb\n",
		"<ul><li>one</li><li>two</li></ul>": "- one\n- two\n",
		"<style>p{x:y}</style><script>evil()</script>x": "x\n",
		"&lt;tag&gt; &amp;   spaces\n\n here":           "<tag> & spaces here\n",
		`<a href="https://x.test">https://x.test</a>`:   "https://x.test\n",
		`<a href="javascript:alert(1)">click</a>`:       "click\n",
		`<img alt="Logo" src="x.png">Hi`:                "Logo Hi\n",
	}
	for in, want := range cases {
		if got := FromHTML(in); got != want {
			t.Errorf("FromHTML(%q) = %q, want %q", in, got, want)
		}
	}
}
