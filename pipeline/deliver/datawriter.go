package deliver

import (
	"bufio"
	"bytes"
	"io"
	"sync"
)

// The message goes out in bulk instead of through go-smtp's DATA writer:
// that is net/textproto's DotWriter, which handles the message one byte at a
// time (a bufio.Writer.WriteByte per byte; ~15% of the server's CPU with
// 1 MB messages). writeData dot-stuffs with bytes.IndexByte over lines and
// writes the runs between insertions with one copy each, producing exactly
// the bytes the DotWriter would have.

// dataBufSize is the buffer between the stuffer and the connection: runs
// between inserted bytes are copied into it, so that the TLS connection gets
// full records rather than one small write per stuffed dot.
const dataBufSize = 32 << 10

var dataBufPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, dataBufSize) }}

// crlfBytes is a variable: []byte("\r\n") passed to w.Write would be
// allocated for each message.
var crlfBytes = []byte("\r\n")

// writeData sends prefix and then data as the DATA payload and ends it.
// wire is the connection under the SMTP client (TLS included) and w the
// client's DATA writer, returned by Client.Data.
//
// We write to wire behind the client's back. That is safe here: Client.Data
// flushes the DATA command and reads the 354 before returning, so the
// client's buffered writer is empty and nothing of ours can be reordered
// with its bytes. (A DebugWriter on the client, which we do not set, would
// not see the message.) To leave the reply to go-smtp, everything but the
// final line ending goes to wire; then "\r\n" goes through w, which puts its
// DotWriter at the beginning of a line, and w.Close sends ".\r\n" and reads
// the reply. When the message does not end with a line ending, the
// DotWriter's Close adds one before the dot (CRLF, or LF after a trailing
// CR): the "\r\n" through w stands for it (and for the trailing CR, then
// held back from wire), so the wire is the same either way.
func writeData(wire io.Writer, w io.WriteCloser, prefix, data []byte) error {
	prefix, data = trimEnd(prefix, data, lineEndLen(prefix, data))
	bw := dataBufPool.Get().(*bufio.Writer)
	bw.Reset(wire)
	s := dotStuffer{w: bw, bol: true}
	s.write(prefix)
	s.write(data)
	err := bw.Flush()
	bw.Reset(nil) // do not keep the connection alive from the pool
	dataBufPool.Put(bw)
	if err != nil {
		return err
	}
	if _, err := w.Write(crlfBytes); err != nil {
		return err
	}
	return w.Close()
}

// lineEndLen returns how many bytes at the end of prefix+data the DotWriter
// would have written as they are and that writeData leaves to w: the last
// LF and the CR before it, if that CR was one the DotWriter took as the
// start of a line ending (otherwise it inserts one before the LF); or a final
// CR that the DotWriter would have completed with LF at Close. A run of CRs
// starts after another byte or at the start, so its odd CRs are the ones
// that start a line ending.
func lineEndLen(prefix, data []byte) int {
	p, d := prefix, data
	n := 0
	if lastByte(p, d) == '\n' {
		p, d = trimEnd(p, d, 1)
		n = 1
	}
	if crRun(p, d)%2 == 1 {
		n++
	}
	return n
}

func lastByte(p, d []byte) byte {
	switch {
	case len(d) > 0:
		return d[len(d)-1]
	case len(p) > 0:
		return p[len(p)-1]
	}
	return 0
}

// crRun returns how many CRs end prefix+data.
func crRun(p, d []byte) int {
	n := trailingCRs(d)
	if n == len(d) {
		n += trailingCRs(p)
	}
	return n
}

func trailingCRs(b []byte) int {
	n := 0
	for n < len(b) && b[len(b)-1-n] == '\r' {
		n++
	}
	return n
}

// trimEnd removes the last n bytes of prefix+data.
func trimEnd(p, d []byte, n int) ([]byte, []byte) {
	if n <= len(d) {
		return p, d[:len(d)-n]
	}
	return p[:len(p)-(n-len(d))], nil
}

// dotStuffer writes what textproto's DotWriter writes for the same input,
// without the end of data that its Close adds: a '.' before each '.' that
// starts a line, and a CR before each LF that does not end a CRLF.
//
// Like the DotWriter, it treats a CR as the start of a line ending only when
// the CR before it was not one: in a run of CRs before an LF, every other CR
// counts, and "\r\r\n" becomes "\r\r\r\n".
type dotStuffer struct {
	w   *bufio.Writer // errors stick in it for Flush to report
	bol bool          // at the beginning of a line
	cr  bool          // after a CR that starts a line ending
}

func (s *dotStuffer) write(b []byte) {
	start := 0 // b[start:i] is not written yet
	for i := 0; i < len(b); {
		if s.bol && b[i] == '.' {
			s.w.Write(b[start:i])
			s.w.WriteByte('.')
			start = i
		}
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			s.bol, s.cr = false, endsInCR(b[i:], s.cr)
			break
		}
		if !endsInCR(b[i:i+j], s.cr) {
			s.w.Write(b[start : i+j])
			s.w.WriteByte('\r')
			start = i + j
		}
		i += j + 1
		s.bol, s.cr = true, false
	}
	s.w.Write(b[start:])
}

// endsInCR reports whether line, which has no LF, leaves the DotWriter after
// a CR that starts a line ending; cr is that state before line.
func endsInCR(line []byte, cr bool) bool {
	n := trailingCRs(line)
	if n == len(line) {
		return cr != (n%2 == 1)
	}
	return n%2 == 1
}
