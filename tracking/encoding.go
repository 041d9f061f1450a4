package tracking

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime/quotedprintable"
)

// Content-Transfer-Encoding values (lower case) this package writes.
const (
	encQP     = "quoted-printable"
	encBase64 = "base64"
)

// maxLineOctets is the longest line, CRLF excluded, that 7bit and 8bit
// bodies may carry (RFC 5322 section 2.1.1, RFC 2045 section 2.7).
const maxLineOctets = 998

// decodeBody undoes the transfer encoding cte (lower case, "" if absent).
// For identity encodings it returns body itself.
func decodeBody(cte string, body []byte) ([]byte, error) {
	switch cte {
	case "", "7bit", "8bit", "binary":
		return body, nil
	case encQP:
		b, err := readAll(quotedprintable.NewReader(bytes.NewReader(body)), len(body))
		if err != nil {
			return nil, fmt.Errorf("invalid quoted-printable body: %v", err)
		}
		return b, nil
	case encBase64:
		// Line breaks are expected; stray spaces and tabs are tolerated as
		// go-message does.
		clean := bytes.Map(func(r rune) rune {
			switch r {
			case ' ', '\t', '\r', '\n':
				return -1
			}
			return r
		}, body)
		b := make([]byte, base64.StdEncoding.DecodedLen(len(clean)))
		n, err := base64.StdEncoding.Decode(b, clean)
		if err != nil {
			return nil, fmt.Errorf("invalid base64 body: %v", err)
		}
		return b[:n], nil
	}
	return nil, fmt.Errorf("unknown Content-Transfer-Encoding %q", cte)
}

// encodeBody encodes a rewritten body with the transfer encoding cte it was
// decoded from. It returns the encoding actually used: a 7bit, 8bit or
// unlabelled body with a line longer than 998 octets becomes
// quoted-printable. endCRLF says whether the original body ended with a line
// break, which base64 output then keeps (for quoted-printable and identity
// encodings the break is part of the content and is kept anyway).
func encodeBody(cte string, b []byte, endCRLF bool) ([]byte, string) {
	switch cte {
	case encQP:
		return encodeQP(b), cte
	case encBase64:
		return encodeBase64(b, endCRLF), cte
	case "binary":
		return b, cte
	}
	if hasLongLine(b) {
		return encodeQP(b), encQP
	}
	return b, cte
}

// encodeQP encodes b as quoted-printable in text mode: line breaks in b
// become CRLF, other lines are wrapped at 76 characters with soft breaks.
func encodeQP(b []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(len(b) + len(b)/16 + 16)
	w := quotedprintable.NewWriter(&buf)
	w.Write(b) // writes to a bytes.Buffer cannot fail
	w.Close()
	return buf.Bytes()
}

// encodeBase64 encodes b as base64 in lines of 76 characters separated by
// CRLF, with a final CRLF if endCRLF.
func encodeBase64(b []byte, endCRLF bool) []byte {
	const lineLen = 76
	enc := make([]byte, base64.StdEncoding.EncodedLen(len(b)))
	base64.StdEncoding.Encode(enc, b)
	out := make([]byte, 0, len(enc)+len(enc)/lineLen*2+2)
	for len(enc) > lineLen {
		out = append(out, enc[:lineLen]...)
		out = append(out, crlf...)
		enc = enc[lineLen:]
	}
	out = append(out, enc...)
	if endCRLF {
		out = append(out, crlf...)
	}
	return out
}

// readAll is io.ReadAll with a buffer sized for about sizeHint bytes.
func readAll(r io.Reader, sizeHint int) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(sizeHint + bytes.MinRead)
	_, err := buf.ReadFrom(r)
	return buf.Bytes(), err
}

// hasLongLine reports whether b has a line longer than maxLineOctets, not
// counting its line break.
func hasLongLine(b []byte) bool {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return len(b) > maxLineOctets
		}
		line := b[:i]
		if len(line) > 0 && line[len(line)-1] == '\r' {
			line = line[:len(line)-1]
		}
		if len(line) > maxLineOctets {
			return true
		}
		b = b[i+1:]
	}
	return false
}
