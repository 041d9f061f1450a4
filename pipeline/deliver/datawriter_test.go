package deliver

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/textproto"
	"strings"
	"testing"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
)

// dotWriterWire is what go-smtp's DATA writer sends for prefix and data:
// both through textproto's DotWriter, then its Close.
func dotWriterWire(prefix, data []byte) []byte {
	var buf bytes.Buffer
	w := textproto.NewWriter(bufio.NewWriter(&buf)).DotWriter()
	w.Write(prefix)
	w.Write(data)
	w.Close()
	return buf.Bytes()
}

// writeDataWire is what writeData sends: its own writes to the connection,
// then the end through a DotWriter on the same connection (as go-smtp's,
// whose buffer is empty after the 354).
func writeDataWire(t testing.TB, prefix, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := textproto.NewWriter(bufio.NewWriter(&buf)).DotWriter()
	if err := writeData(&buf, w, prefix, data); err != nil {
		t.Fatalf("writeData: %v", err)
	}
	return buf.Bytes()
}

func TestWriteData(t *testing.T) {
	long := strings.Repeat("x", 2000)
	// fill puts the byte after it at offset n of the stuffer's output.
	fill := func(n int) string { return strings.Repeat("y", n) }
	tests := []struct {
		name, prefix, data string
		want               string // the wire, when given; always compared with the DotWriter
	}{
		{name: "empty", want: "\r\n.\r\n"},
		{name: "CRLF only", data: "\r\n", want: "\r\n.\r\n"},
		{name: "LF only", data: "\n", want: "\r\n.\r\n"},
		{name: "CR only", data: "\r", want: "\r\n.\r\n"},
		{name: "no final newline", data: "a\r\nb", want: "a\r\nb\r\n.\r\n"},
		{name: "leading dots", data: ".a\r\n..b\r\nc.d\r\n", want: "..a\r\n...b\r\nc.d\r\n.\r\n"},
		{name: "dot at start of data", data: ".\r\n", want: "..\r\n.\r\n"},
		{name: "line that is a dot", data: "a\r\n.\r\nb\r\n", want: "a\r\n..\r\nb\r\n.\r\n"},
		{name: "dot line at the very end", data: "a\r\n.\r\n", want: "a\r\n..\r\n.\r\n"},
		{name: "dot without newline at the end", data: "a\r\n.", want: "a\r\n..\r\n.\r\n"},
		{name: "two dots at the end", data: "a\r\n..", want: "a\r\n...\r\n.\r\n"},
		{name: "bare LF", data: "a\nb\n", want: "a\r\nb\r\n.\r\n"},
		{name: "dot after bare LF", data: "a\n.b\n.\n", want: "a\r\n..b\r\n..\r\n.\r\n"},
		{name: "blank lines with bare LF", data: "\n\n\r\n\n", want: "\r\n\r\n\r\n\r\n.\r\n"},
		{name: "bare CR", data: "a\rb\r.c\r\n", want: "a\rb\r.c\r\n.\r\n"},
		{name: "CR at the end", data: "a\r", want: "a\r\n.\r\n"},
		// The DotWriter takes only every other CR of a run as the start of
		// a line ending.
		{name: "CR CR LF", data: "a\r\r\nb", want: "a\r\r\r\nb\r\n.\r\n"},
		{name: "CR CR LF at the end", data: "a\r\r\n", want: "a\r\r\r\n.\r\n"},
		{name: "CR CR CR LF", data: "a\r\r\r\n", want: "a\r\r\r\n.\r\n"},
		{name: "CR CR at the end", data: "a\r\r", want: "a\r\r\r\n.\r\n"},
		{name: "CR CR CR at the end", data: "a\r\r\r", want: "a\r\r\r\n.\r\n"},
		{name: "prefix only", prefix: "X: 1\r\n", want: "X: 1\r\n.\r\n"},
		{name: "prefix then dot", prefix: "X: 1\r\n", data: ".a\r\n", want: "X: 1\r\n..a\r\n.\r\n"},
		{name: "prefix without newline then dot", prefix: "X: 1", data: ".a\r\n", want: "X: 1.a\r\n.\r\n"},
		{name: "CRLF split", prefix: "X: 1\r", data: "\n.a\r\n", want: "X: 1\r\n..a\r\n.\r\n"},
		{name: "CRLF split at the end", prefix: "X: 1\r", data: "\n", want: "X: 1\r\n.\r\n"},
		{name: "CR run split", prefix: "X\r", data: "\r\n", want: "X\r\r\r\n.\r\n"},
		{name: "CR run split over empty data", prefix: "X\r\r", data: "\r\n"},
		{name: "prefix with bare LF and dots", prefix: ".X: 1\n b\n", data: "a\n", want: "..X: 1\r\n b\r\na\r\n.\r\n"},
		{name: "prefix ending in CR, no data", prefix: "X\r", want: "X\r\n.\r\n"},
		{name: "long lines", data: long + "\r\n." + long + "\n" + long},
		{name: "dot after buffer", data: fill(dataBufSize) + "\n.\n"},
		{name: "dot at buffer end", data: fill(dataBufSize-2) + "\n.\n"},
		{name: "dot at buffer end CRLF", data: fill(dataBufSize-3) + "\r\n.\n"},
		{name: "CR at buffer end", data: fill(dataBufSize-1) + "\n"},
		{name: "inserted CR at buffer end", data: fill(dataBufSize-1) + "\n.\n" + fill(dataBufSize) + ".\n\n"},
		{name: "CRLF across buffer", data: fill(dataBufSize-1) + "\r\n.."},
		{name: "prefix across buffer", prefix: fill(dataBufSize+1) + "\n", data: ".\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := writeDataWire(t, []byte(tt.prefix), []byte(tt.data))
			if ref := dotWriterWire([]byte(tt.prefix), []byte(tt.data)); !bytes.Equal(got, ref) {
				t.Error(diff(got, ref))
			}
			if tt.want != "" && string(got) != tt.want {
				t.Errorf("wire %q, want %q", got, tt.want)
			}
		})
	}
}

// TestWriteDataMessage: a real message, and the same with bare LFs and a
// leading dot on every line, so that every line has an insertion.
func TestWriteDataMessage(t *testing.T) {
	msg := testkit.LoadMessage(200<<10, 20)
	dotted := bytes.ReplaceAll(msg, []byte("\r\n"), []byte("\n."))
	prefix := []byte("DKIM-Signature: v=1; a=rsa-sha256; d=bench.test;\r\n b=abc\r\n")
	for _, data := range [][]byte{msg, dotted} {
		if got, ref := writeDataWire(t, prefix, data), dotWriterWire(prefix, data); !bytes.Equal(got, ref) {
			t.Error(diff(got, ref))
		}
	}
}

// FuzzDotStuff checks that writeData sends exactly what go-smtp's DATA
// writer (textproto's DotWriter) sends.
func FuzzDotStuff(f *testing.F) {
	f.Fuzz(func(t *testing.T, prefix, data []byte) {
		got, ref := writeDataWire(t, prefix, data), dotWriterWire(prefix, data)
		if !bytes.Equal(got, ref) {
			t.Fatalf("prefix %q data %q: %s", prefix, data, diff(got, ref))
		}
	})
}

// BenchmarkWriteData sends a 1 MB message and its DKIM-Signature as DATA to
// io.Discard: impl=textproto through go-smtp's DATA writer (as transaction
// did before writeData), impl=bulk with writeData. msg=lf is the message
// with bare LFs, an insertion on every line.
func BenchmarkWriteData(b *testing.B) {
	prefix := []byte("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=bench.test; s=pigeonpost;\r\n" +
		" h=from:to:subject:date:mime-version:content-type; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\r\n" +
		" b=dGhpcyBpcyBub3QgYSByZWFsIHNpZ25hdHVyZSwganVzdCBpdHMgc2l6ZQ==\r\n")
	crlfMsg := testkit.LoadMessage(1<<20, 20)
	msgs := []struct {
		name string
		data []byte
	}{
		{"crlf", crlfMsg},
		{"lf", bytes.ReplaceAll(crlfMsg, []byte("\r\n"), []byte("\n"))},
	}
	// go-smtp's client writes through a textproto.Conn, whose bufio.Writer
	// has the default size.
	tw := textproto.NewWriter(bufio.NewWriter(io.Discard))
	for _, m := range msgs {
		b.Run("msg="+m.name+"/impl=textproto", func(b *testing.B) {
			b.SetBytes(int64(len(prefix) + len(m.data)))
			b.ReportAllocs()
			for b.Loop() {
				w := tw.DotWriter()
				w.Write(prefix)
				w.Write(m.data)
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("msg="+m.name+"/impl=bulk", func(b *testing.B) {
			b.SetBytes(int64(len(prefix) + len(m.data)))
			b.ReportAllocs()
			for b.Loop() {
				if err := writeData(io.Discard, tw.DotWriter(), prefix, m.data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// diff describes where got first differs from the DotWriter's ref.
func diff(got, ref []byte) string {
	i := 0
	for i < len(got) && i < len(ref) && got[i] == ref[i] {
		i++
	}
	around := func(b []byte) []byte { return b[max(i-20, 0):min(i+20, len(b))] }
	return fmt.Sprintf("wire (%d bytes) differs from the DotWriter's (%d) at byte %d: %q, DotWriter %q",
		len(got), len(ref), i, around(got), around(ref))
}
