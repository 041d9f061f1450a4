package account

import (
	"encoding/base64"
	"errors"
	"regexp"
	"testing"

	"github.com/pigeonpost/pigeonpost/pipeline"
)

// canonicalCursor is the text listCursor.encode writes, before base64:
// decimal ms and skip, no sign but ms's minus, no leading zeros.
var canonicalCursor = regexp.MustCompile(`^(0|-?[1-9][0-9]*):(0|[1-9][0-9]*)$`)

// FuzzDecodeCursor holds the GET /v1/emails cursor, which clients send back
// as they please, to its contract: decodeCursor never panics and rejects with
// ErrInvalid (a 400, never a 500); what it accepts, encode gives back as the
// same position; and a canonical cursor, the only kind encode writes,
// survives encode(decode(x)) byte for byte.
//
// decodeCursor also accepts other spellings of a position (leading zeros,
// "+7", "-0", base64 with non-zero padding bits or with CR and LF inside,
// which the base64 decoder skips); they decode to the cursor
// the canonical form names, so the weaker property below is checked for
// them. If decodeCursor comes to reject them, the canonical gate can go.
func FuzzDecodeCursor(f *testing.F) {
	for _, c := range []listCursor{{0, 0}, {1700000000123, 1}, {-1, 0}, {9223372036854775807, 2147483647}, {-9223372036854775808, 0}} {
		f.Add(c.encode())
	}
	for _, s := range []string{
		"", "=", "MTow", "MTow==", "MToy\n", "!!!", "MTo", // "1:" (no skip)
		base64.RawURLEncoding.EncodeToString([]byte("1:-1")),
		base64.RawURLEncoding.EncodeToString([]byte("007:1")),
		base64.RawURLEncoding.EncodeToString([]byte("+7:1")),
		base64.RawURLEncoding.EncodeToString([]byte("7")),
		base64.RawURLEncoding.EncodeToString([]byte("7:1:2")),
		base64.RawURLEncoding.EncodeToString([]byte("99999999999999999999:0")),
		base64.StdEncoding.EncodeToString([]byte("1700000000123:1")),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		c, err := decodeCursor(in)
		if err != nil {
			if !errors.Is(err, pipeline.ErrInvalid) {
				t.Fatalf("decodeCursor(%q): error %v (%T) is not an ErrInvalid", in, err, err)
			}
			if c != (listCursor{}) {
				t.Fatalf("decodeCursor(%q) rejected but returned %+v", in, c)
			}
			return
		}
		if c.skip < 0 {
			t.Fatalf("decodeCursor(%q) accepted a negative skip: %+v", in, c)
		}
		out := c.encode()
		again, err := decodeCursor(out)
		if err != nil || again != c {
			t.Fatalf("decodeCursor(%q) = %+v, whose encoding %q decodes to %+v, %v", in, c, out, again, err)
		}
		// Canonical: the base64 is the one encoding of raw (the decoder
		// also skips CR and LF and ignores padding bits) and raw is
		// canonical text.
		raw, err := base64.RawURLEncoding.DecodeString(in)
		if err == nil && base64.RawURLEncoding.EncodeToString(raw) == in && canonicalCursor.Match(raw) && out != in {
			t.Fatalf("canonical cursor %q (%q) decodes to %+v, which encodes as %q", in, raw, c, out)
		}
	})
}

// FuzzEncodeCursor builds cursors from fuzzed fields: every cursor
// ListEmails can hand out (skip >= 0) encodes to canonical text that
// decodes to the same cursor; a negative skip, which ListEmails never
// writes, is refused on the way back in.
func FuzzEncodeCursor(f *testing.F) {
	f.Add(int64(0), 0)
	f.Add(int64(1700000000123), 1)
	f.Add(int64(-1), 3)
	f.Add(int64(9223372036854775807), 2147483647)
	f.Add(int64(-9223372036854775808), 0)
	f.Add(int64(5), -1)
	f.Fuzz(func(t *testing.T, ms int64, skip int) {
		c := listCursor{ms: ms, skip: skip}
		s := c.encode()
		got, err := decodeCursor(s)
		if skip < 0 {
			if !errors.Is(err, pipeline.ErrInvalid) {
				t.Fatalf("decodeCursor(%q) of %+v = %+v, %v; want ErrInvalid for a negative skip", s, c, got, err)
			}
			return
		}
		if err != nil || got != c {
			t.Fatalf("decodeCursor(encode(%+v)) = %+v, %v", c, got, err)
		}
		raw, err := base64.RawURLEncoding.Strict().DecodeString(s)
		if err != nil || !canonicalCursor.Match(raw) {
			t.Fatalf("encode(%+v) = %q (%q), not canonical base64url of ms:skip (%v)", c, s, raw, err)
		}
	})
}
