package pipeline

import (
	"bytes"
	"io"
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

// FuzzNormalizeCRLF checks the invariant that matters: no bare CR or LF
// survives, and nothing but line endings changes.
func FuzzNormalizeCRLF(f *testing.F) {
	f.Add([]byte("a\nb\rc\r\nd"))
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := io.ReadAll(NormalizeCRLF(iotest.HalfReader(bytes.NewReader(in))))
		if err != nil {
			t.Fatal(err)
		}
		for i, b := range got {
			if b == '\r' && (i+1 >= len(got) || got[i+1] != '\n') {
				t.Fatalf("bare CR at %d in %q", i, got)
			}
			if b == '\n' && (i == 0 || got[i-1] != '\r') {
				t.Fatalf("bare LF at %d in %q", i, got)
			}
		}
		strip := func(b []byte) []byte {
			return bytes.ReplaceAll(bytes.ReplaceAll(b, []byte("\r"), nil), []byte("\n"), nil)
		}
		if !bytes.Equal(strip(in), strip(got)) {
			t.Fatalf("content changed: %q → %q", in, got)
		}
	})
}
