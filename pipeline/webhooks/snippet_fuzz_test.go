package webhooks

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzSnippet: whatever an endpoint answers, the snippet kept of it is
// valid UTF-8 on one line, without control characters, and no longer than
// the answer it came from (each byte gives at most one rune, and a rune is
// never longer than the bytes it replaces, but for U+FFFD: 3 bytes).
func FuzzSnippet(f *testing.F) {
	for _, seed := range []string{"ok", "a\r\nb\tc\x00", "bad \xff byte", "cut é"[:len("cut é")-1], "\x1b[31mred"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got := Snippet(b)
		if !utf8.ValidString(got) {
			t.Fatalf("Snippet(%q) = %q: not valid UTF-8", b, got)
		}
		if strings.ContainsFunc(got, unicode.IsControl) {
			t.Fatalf("Snippet(%q) = %q: a control character", b, got)
		}
		if utf8.RuneCountInString(got) > len(b) {
			t.Fatalf("Snippet(%q) = %q: more runes than bytes", b, got)
		}
	})
}
