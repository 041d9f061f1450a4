package pipeline

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestNormalizeCRLF(t *testing.T) {
	cases := map[string]string{
		"":                            "",
		"a\r\nb":                      "a\r\nb",
		"a\nb":                        "a\r\nb",
		"a\rb":                        "a\r\nb",
		"a\r":                         "a\r\n",
		"a\r\r\n":                     "a\r\n\r\n",
		"\n.\n":                       "\r\n.\r\n",
		"x\n.\r\nMAIL FROM:<s@e>\r\n": "x\r\n.\r\nMAIL FROM:<s@e>\r\n",
		"\r\r\r":                      "\r\n\r\n\r\n",
		"\n\r":                        "\r\n\r\n",
	}
	for in, want := range cases {
		for name, r := range map[string]io.Reader{
			"whole":   bytes.NewReader([]byte(in)),
			"onebyte": iotest.OneByteReader(bytes.NewReader([]byte(in))),
		} {
			got, err := io.ReadAll(NormalizeCRLF(r))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != want {
				t.Errorf("%s %q → %q, want %q", name, in, got, want)
			}
		}
	}
}

// TestNormalizeCRLFLongestLine: the reader measures the lines as it
// normalises them, CRLF excluded, whatever the line endings and however
// the reads are split.
func TestNormalizeCRLFLongestLine(t *testing.T) {
	long := strings.Repeat("x", 1500)
	cases := map[string]int{
		"":                           0,
		"abc":                        3,
		"ab\r\nabcd\r\n":             4,
		"abcd\nab":                   4,
		"ab\rabcde\r":                5,
		"ab\r\r\nabc":                3,
		"a\r\n" + long + "\r\nb":     1500,
		"a\n" + long:                 1500,
		long + "\r" + long + "x\r\n": 1501,
	}
	for in, want := range cases {
		for name, r := range map[string]io.Reader{
			"whole":   bytes.NewReader([]byte(in)),
			"onebyte": iotest.OneByteReader(bytes.NewReader([]byte(in))),
		} {
			n := NormalizeCRLF(r)
			if _, err := io.Copy(io.Discard, n); err != nil {
				t.Fatal(err)
			}
			if got := n.LongestLine(); got != want {
				t.Errorf("%s %.20q…: LongestLine() = %d, want %d", name, in, got, want)
			}
		}
	}
}

// FuzzNormalizeCRLF checks the invariant that matters: no bare CR or LF
// survives, and nothing but line endings changes.
func FuzzNormalizeCRLF(f *testing.F) {
	f.Add([]byte("a\nb\rc\r\nd"))
	f.Add([]byte("ab\r\ncd\r\n\r\nef\rgh\r\n\nij\r\r\nkl"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NormalizeCRLF(iotest.HalfReader(bytes.NewReader(in)))
		got, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		longest := 0
		for line := range bytes.SplitSeq(got, []byte("\r\n")) {
			longest = max(longest, len(line))
		}
		if r.LongestLine() != longest {
			t.Fatalf("LongestLine() = %d, the longest line of %q has %d octets", r.LongestLine(), got, longest)
		}
		for i, b := range got {
			if b == '\r' && (i+1 >= len(got) || got[i+1] != '\n') {
				t.Fatalf("bare CR at %d in %q", i, got)
			}
			if b == '\n' && (i == 0 || got[i-1] != '\r') {
				t.Fatalf("bare LF at %d in %q", i, got)
			}
		}
		if want := normalizeSlowly(in); !bytes.Equal(got, want) {
			t.Fatalf("%q → %q, want %q", in, got, want)
		}
		strip := func(b []byte) []byte {
			return bytes.ReplaceAll(bytes.ReplaceAll(b, []byte("\r"), nil), []byte("\n"), nil)
		}
		if !bytes.Equal(strip(in), strip(got)) {
			t.Fatalf("content changed: %q → %q", in, got)
		}
	})
}

// normalizeSlowly is NormalizeCRLF a byte at a time: the reference the
// reader's bulk copies must agree with.
func normalizeSlowly(in []byte) []byte {
	var out []byte
	for i, b := range in {
		switch {
		case b == '\r' && i+1 < len(in) && in[i+1] == '\n':
			out = append(out, '\r')
		case b == '\r', b == '\n' && (i == 0 || in[i-1] != '\r'):
			out = append(out, '\r', '\n')
		default:
			out = append(out, b)
		}
	}
	return out
}
