package pipeline

import (
	"strings"
	"testing"
)

func TestCheckLabels(t *testing.T) {
	ok := map[string]string{"userId": "123"}
	if err := CheckLabels([]string{"welcome"}, ok); err != nil {
		t.Fatal(err)
	}
	many := map[string]string{}
	for i := range MaxMetadataKeys + 1 {
		many[strings.Repeat("k", 1+i%30)+string(rune('a'+i%26))+string(rune('a'+i/26))] = "v"
	}
	cases := map[string]struct {
		tags []string
		md   map[string]string
		want string
	}{
		"tag with CRLF":     {[]string{"a\r\nb"}, nil, "tags[0]"},
		"too many tags":     {make([]string, MaxTags+1), nil, "tags: at most"},
		"empty tag":         {[]string{""}, nil, "tags[0]: must not be empty"},
		"value with LF":     {nil, map[string]string{"k": "a\nb"}, "metadata.k"},
		"key too long":      {nil, map[string]string{strings.Repeat("k", 41): "v"}, "metadata: key"},
		"value too long":    {nil, map[string]string{"k": strings.Repeat("v", 501)}, "metadata.k: must be at most 500"},
		"too many keys":     {nil, many, "metadata: at most 50 keys"},
		"too large in all":  {nil, bigMetadata(), "metadata: keys and values must total at most"},
		"NUL in a key name": {nil, map[string]string{"a\x00": "v"}, "metadata key"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			err := CheckLabels(c.tags, c.md)
			if err == nil || AsError(err).HTTPStatus != 400 || !strings.Contains(AsError(err).Message, c.want) {
				t.Fatalf("got %v, want a 400 containing %q", err, c.want)
			}
		})
	}
}

func bigMetadata() map[string]string {
	m := map[string]string{}
	for i := range 10 {
		m["key"+string(rune('a'+i))] = strings.Repeat("v", 450)
	}
	return m
}

// Quote never lets a CR or LF of the client's through, and never cuts a
// character in two.
func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"a@b.test":                  `"a@b.test"`,
		"a\r\nRCPT TO:<x@y>":        `"a\r\nRCPT TO:<x@y>"`,
		strings.Repeat("é", 50):     `"` + strings.Repeat("é", 40) + `…"`,
		strings.Repeat("x", 81):     `"` + strings.Repeat("x", 80) + `…"`,
		"tab\there, héllo, ünïcode": `"tab\there, héllo, ünïcode"`,
	} {
		if got := Quote(in); got != want {
			t.Errorf("Quote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestCut(t *testing.T) {
	for _, c := range []struct {
		s    string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly", 7, "exactly"},
		{"abcdef", 3, "abc"},
		{"aé", 2, "a"}, // é is two bytes: not split
		{"éé", 3, "é"},
		{"é", 0, ""},
	} {
		if got := Cut(c.s, c.n); got != c.want {
			t.Errorf("Cut(%q, %d) = %q, want %q", c.s, c.n, got, c.want)
		}
	}
}
