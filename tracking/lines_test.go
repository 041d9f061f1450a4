package tracking

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/emersion/go-message"
)

// decodedLeaves returns the decoded body of each leaf of msg, as go-message
// reads it (independently of the code under test).
func decodedLeaves(t *testing.T, msg []byte) []string {
	t.Helper()
	e, err := message.Read(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	err = e.Walk(func(_ []int, part *message.Entity, err error) error {
		if err != nil {
			return err
		}
		if mr := part.MultipartReader(); mr != nil {
			return nil
		}
		b, err := readAll(part.Body, 0)
		if err != nil {
			return err
		}
		if mt, _, _ := part.Header.ContentType(); mt == "message/rfc822" {
			out = append(out, decodedLeaves(t, b)...) // entered as ShortenLines enters it
			return nil
		}
		out = append(out, string(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestShortenLines: a body line over 998 octets is re-encoded with its part
// only, whatever its transfer encoding, and every part decodes to what it
// was; a message without one is returned as it is.
func TestShortenLines(t *testing.T) {
	long := strings.Repeat("0123456789", 150) // 1,500 octets
	huge := strings.Repeat("x", 100_000)
	short := "short line\n"
	tests := map[string]struct {
		in      string
		wantCTE []string // Content-Transfer-Encoding values the output has
	}{
		"no long line": {"Subject: s\n\n" + short, nil},
		"plain 1500":   {"Subject: s\n\n" + short + long + "\n" + short, []string{"quoted-printable"}},
		"plain 100000, no final line break": {"Subject: s\nContent-Transfer-Encoding: 8bit\n\n" + huge,
			[]string{"quoted-printable"}},
		"html": {"Content-Type: text/html; charset=utf-8\n\n<p>" + long + "</p>\n", []string{"quoted-printable"}},
		"binary becomes base64": {"Content-Type: application/octet-stream\nContent-Transfer-Encoding: binary\n\n" + long + "\n",
			[]string{"base64"}},
		"base64 on one line": {"Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n" +
			strings.Repeat("QUJD", 400) + "\n", []string{"base64"}},
		"quoted-printable without soft breaks": {"Content-Transfer-Encoding: quoted-printable\n\n" + long + "=3D\n",
			[]string{"quoted-printable"}},
		"one part of a multipart": {"Content-Type: multipart/alternative; boundary=b\n\n--b\nContent-Type: text/plain\n\n" + short +
			"--b\nContent-Type: text/html\n\n" + long + "\n--b--\n", []string{"quoted-printable"}},
		"quoted-printable would meet the boundary": {"Content-Type: multipart/mixed; boundary=b\n\n--b\n\n" +
			strings.Repeat("a", 75) + "--b " + long + "\n--b--\n", []string{"base64"}},
		"inside message/rfc822": {"Content-Type: message/rfc822\n\nSubject: inner\n\n" + long + "\n", []string{"quoted-printable"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			in := crlfText(tc.in)
			out, err := ShortenLines(in)
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantCTE == nil {
				if &out[0] != &in[0] || len(out) != len(in) {
					t.Error("a message without a long line was copied or changed")
				}
				return
			}
			if hasLongLine(out) {
				t.Errorf("a line over %d octets is left:\n%.2000s", MaxLineOctets, out)
			}
			for _, cte := range tc.wantCTE {
				if !bytes.Contains(out, []byte("Content-Transfer-Encoding: "+cte+"\r\n")) {
					t.Errorf("no Content-Transfer-Encoding: %s in\n%.2000s", cte, out)
				}
			}
			if got, want := decodedLeaves(t, out), decodedLeaves(t, in); !equalStrings(got, want) {
				t.Errorf("decoded parts changed:\n got %.300q\nwant %.300q", got, want)
			}
			if err := parseAll(out); err != nil {
				t.Error(err)
			}
			again, err := ShortenLines(out)
			if err != nil || !bytes.Equal(again, out) {
				t.Errorf("a second pass changed the output: %v", err)
			}
		})
	}
}

// TestShortenLinesRefuses: a long line that re-encoding cannot reach is an
// error naming where it is, never the message back as it was.
func TestShortenLinesRefuses(t *testing.T) {
	long := strings.Repeat("y", 1200)
	for in, want := range map[string]string{
		"Subject: " + long + "\n\nbody\n":                                                      "the Subject header of the message",
		"Subject: s\nX-Long:\n " + long + "\n\nb\n":                                            "the X-Long header of the message",
		"Content-Type: multipart/mixed; boundary=b\n\n--b\nX-Part: " + long + "\n\nx\n--b--\n": "the X-Part header of part 1",
		"Content-Type: multipart/mixed; boundary=b\n\n" + long + "\n--b\n\nx\n--b--\n":         "outside its parts",
		"Content-Transfer-Encoding: base64\n\n!!" + long + "\n":                                "invalid base64",
	} {
		_, err := ShortenLines(crlfText(in))
		var le *LongLineError
		if !errors.As(err, &le) || !strings.Contains(le.Reason, want) {
			t.Errorf("%.40q…: error %v, want one saying %q", in, err, want)
		}
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// FuzzShortenLines: whatever the MIME, ShortenLines either leaves no line
// over MaxLineOctets or says why (a *LongLineError), never panics, returns
// a message without a long line as it is, and a second pass changes
// nothing.
func FuzzShortenLines(f *testing.F) {
	long := strings.Repeat("q", 1000)
	for _, s := range []string{
		"Subject: s\n\nshort\n",
		"Subject: s\n\n" + long + "\n",
		"Content-Type: multipart/mixed; boundary=b\n\n--b\n\n" + long + "\n--b\nContent-Transfer-Encoding: base64\n\n" + long + "\n--b--\n",
		"Content-Type: message/rfc822\n\nContent-Type: multipart/alternative; boundary=c\n\n--c\n\n" + long + "--c\n--c--\n",
		"Content-Transfer-Encoding: quoted-printable\n\n" + long + "=\n",
	} {
		f.Add(crlfText(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := ShortenLines(in)
		if err != nil {
			var le *LongLineError
			if !errors.As(err, &le) {
				t.Fatalf("error %v (%T) is not a *LongLineError", err, err)
			}
			return
		}
		if !hasLongLine(in) && !bytes.Equal(out, in) {
			t.Fatalf("a message without a long line changed: %q → %q", in, out)
		}
		if hasLongLine(out) {
			t.Fatalf("a long line is left in %q", out)
		}
		again, err := ShortenLines(out)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("a second pass changed %q: %v", out, err)
		}
	})
}
