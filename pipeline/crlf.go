package pipeline

import (
	"bytes"
	"io"
)

// NormalizeCRLF returns a reader that turns every bare CR and bare LF of r
// into CRLF. RFC 5322 §2.3 allows CR and LF only together; a relay that
// forwards bare ones is the outbound half of an SMTP smuggling pair
// (CVE-2023-51764), and DKIM signed over them breaks once an outbound dot
// writer rewrites them. It runs before anything else reads the message.
func NormalizeCRLF(r io.Reader) *CRLFReader {
	return &CRLFReader{r: r}
}

// CRLFReader is the reader NormalizeCRLF returns. It measures the lines on
// the way (LongestLine), so that finding a line too long to relay as is
// takes no other pass over the message.
type CRLFReader struct {
	r       io.Reader
	buf     [32 * 1024]byte
	store   []byte // backing array of out, reused for every chunk
	out     []byte // normalised bytes not yet returned
	prevCR  bool   // the last byte read was a CR whose LF may come next
	line    int    // octets of the current line so far
	longest int    // octets of the longest line ended so far
	err     error
}

// LongestLine is the length in octets, CRLF excluded, of the longest line
// read so far: once the reader has returned io.EOF, of the whole message
// (Submission.LongestLine).
func (c *CRLFReader) LongestLine() int { return max(c.longest, c.line) }

func (c *CRLFReader) Read(p []byte) (int, error) {
	for len(c.out) == 0 {
		if c.err != nil {
			return 0, c.err
		}
		n, err := c.r.Read(c.buf[:])
		c.store = c.normalise(c.buf[:n], c.store[:0])
		c.out = c.store
		if err != nil {
			if c.prevCR { // a CR at the very end is bare
				c.out = append(c.out, '\n')
				c.prevCR = false
			}
			c.err = err
		}
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
	return n, nil
}

// normalise appends in to dst with bare CR and LF replaced by CRLF. Runs
// of well-formed lines, where the only CR is the one before each LF, are
// found with bytes.IndexByte and copied whole; what is left goes a line
// ending at a time.
func (c *CRLFReader) normalise(in, dst []byte) []byte {
	for len(in) > 0 {
		if c.prevCR {
			c.prevCR = false
			if in[0] == '\n' {
				dst = append(dst, '\n')
				in = in[1:]
				continue
			}
			dst = append(dst, '\n') // the CR before was bare
		}
		run := 0 // in[:run] is well-formed lines
		for {
			j := bytes.IndexByte(in[run:], '\n')
			if j < 1 || in[run+j-1] != '\r' || bytes.IndexByte(in[run:run+j-1], '\r') >= 0 {
				break
			}
			c.longest = max(c.longest, c.line+j-1)
			c.line = 0
			run += j + 1
		}
		dst = append(dst, in[:run]...)
		in = in[run:]
		i := indexLineEnd(in)
		if i < 0 {
			c.line += len(in)
			return append(dst, in...)
		}
		// A CR or LF ends the line, whatever follows it.
		c.longest = max(c.longest, c.line+i)
		c.line = 0
		dst = append(dst, in[:i]...)
		if in[i] == '\n' {
			dst = append(dst, '\r', '\n') // a bare LF
		} else {
			dst = append(dst, '\r')
			c.prevCR = true
		}
		in = in[i+1:]
	}
	return dst
}

// indexLineEnd is the index of the first CR or LF of b, or -1; unlike
// bytes.IndexAny, which goes a byte at a time for a set of bytes, it runs
// on the vectorised bytes.IndexByte.
func indexLineEnd(b []byte) int {
	lf := bytes.IndexByte(b, '\n')
	if lf >= 0 {
		b = b[:lf]
	}
	if cr := bytes.IndexByte(b, '\r'); cr >= 0 {
		return cr
	}
	return lf
}
