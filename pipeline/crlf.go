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
// without CR or LF are copied whole.
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
		i := bytes.IndexAny(in, "\r\n")
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
