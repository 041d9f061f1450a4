package pipeline

import "io"

// NormalizeCRLF returns a reader that turns every bare CR and bare LF of r
// into CRLF. RFC 5322 §2.3 allows CR and LF only together; a relay that
// forwards bare ones is the outbound half of an SMTP smuggling pair
// (CVE-2023-51764), and DKIM signed over them breaks once an outbound dot
// writer rewrites them. It runs before anything else reads the message.
func NormalizeCRLF(r io.Reader) io.Reader {
	return &crlfReader{r: r}
}

type crlfReader struct {
	r      io.Reader
	buf    [32 * 1024]byte
	out    []byte // normalised bytes not yet returned
	prevCR bool   // the last byte read was a CR whose LF may come next
	err    error
}

func (c *crlfReader) Read(p []byte) (int, error) {
	for len(c.out) == 0 {
		if c.err != nil {
			return 0, c.err
		}
		n, err := c.r.Read(c.buf[:])
		c.out = c.normalise(c.buf[:n], c.out[:0])
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

// normalise appends in to dst with bare CR and LF replaced by CRLF.
func (c *crlfReader) normalise(in, dst []byte) []byte {
	for _, b := range in {
		switch {
		case b == '\n':
			if !c.prevCR {
				dst = append(dst, '\r')
			}
			dst = append(dst, '\n')
			c.prevCR = false
		case c.prevCR:
			// The CR before this byte was bare.
			dst = append(dst, '\n')
			if b == '\r' {
				dst = append(dst, '\r')
				continue // prevCR stays true
			}
			dst = append(dst, b)
			c.prevCR = false
		case b == '\r':
			dst = append(dst, '\r')
			c.prevCR = true
		default:
			dst = append(dst, b)
		}
	}
	return dst
}
