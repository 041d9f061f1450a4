package tracking

import (
	"bytes"
	"fmt"
	"mime"
	"strings"
)

// LongLineError says why ShortenLines could not make a message relayable:
// a header line too long, or a long line where re-encoding cannot reach.
type LongLineError struct{ Reason string }

func (e *LongLineError) Error() string { return e.Reason }

// MaxLineOctets is the longest line, CRLF excluded, that a message may
// carry over SMTP (RFC 5322 section 2.1.1, RFC 5321 section 4.5.3.1.6).
const MaxLineOctets = maxLineOctets

// HasLongLine reports whether the CRLF text b has a line longer than
// MaxLineOctets, CRLF excluded.
func HasLongLine(b []byte) bool { return hasLongLine(b) }

// ShortenLines returns the CRLF message msg with every body line longer
// than MaxLineOctets carried by a re-encoded part, so that no line of the
// result is longer: a 7bit, 8bit or unlabelled part becomes
// quoted-printable (base64 if the quoted-printable lines would be taken
// for a multipart boundary), a binary part base64, and a quoted-printable
// or base64 part whose lines are too long (malformed) is encoded again the
// same way. Its decoded content is unchanged. Parts without a long line,
// and multipart structure, are copied byte for byte; message/rfc822 parts
// are entered. The caller measured msg first (the common case, no long
// line, should not come here: ShortenLines does not copy it then, but it
// walks the MIME tree).
//
// A long line that re-encoding cannot shorten (in a header field, a
// multipart preamble or epilogue, a part whose header cannot be read) is
// a *LongLineError naming where it is.
func ShortenLines(msg []byte) ([]byte, error) {
	if !hasLongLine(msg) {
		return msg, nil
	}
	s := &shortener{}
	if err := s.entity(msg, "", 0, nil); err != nil {
		return nil, err
	}
	return s.out, nil
}

type shortener struct{ out []byte }

func (s *shortener) entity(raw []byte, path string, depth int, bounds []string) error {
	where := "the message"
	if path != "" {
		where = "part " + path
	}
	if !hasLongLine(raw) {
		s.out = append(s.out, raw...)
		return nil
	}
	n := headerLen(raw)
	if n < 0 {
		return &LongLineError{fmt.Sprintf("%s has a header line longer than %d octets", where, maxLineOctets)}
	}
	head, body := raw[:n], raw[n:]
	fields, ok := parseHeader(head)
	if !ok {
		return &LongLineError{fmt.Sprintf("%s has a line longer than %d octets and a header that cannot be read", where, maxLineOctets)}
	}
	if name := longField(head, fields); name != "" {
		return &LongLineError{fmt.Sprintf("the %s header of %s has a line longer than %d octets", name, where, maxLineOctets)}
	}
	ctype := "text/plain"
	if f := getField(fields, "Content-Type"); f != nil && f.value != "" {
		ctype = f.value
	}
	mt, params, err := mime.ParseMediaType(ctype)
	if err != nil {
		mt = "text/plain" // as readers take it; the part is a leaf either way
	}
	switch {
	case strings.HasPrefix(mt, "multipart/"):
		return s.multipart(head, body, params["boundary"], where, path, depth, bounds)
	case (mt == "message/rfc822" || mt == "message/global") && depth < maxDepth && identityEncoding(fields):
		s.out = append(s.out, head...)
		return s.entity(body, childPath(path, "1"), depth+1, bounds)
	}
	return s.leaf(head, body, fields, where, bounds)
}

func (s *shortener) multipart(head, body []byte, boundary, where, path string, depth int, bounds []string) error {
	parts, ok := scanMultipart(body, boundary, maxParts)
	if boundary == "" || !ok || depth >= maxDepth {
		return &LongLineError{fmt.Sprintf("%s has a line longer than %d octets in a multipart that cannot be read", where, maxLineOctets)}
	}
	childBounds := append(bounds[:len(bounds):len(bounds)], "--"+boundary)
	s.out = append(s.out, head...)
	pos := 0
	for i, p := range parts {
		if hasLongLine(body[pos:p.start]) {
			return &LongLineError{fmt.Sprintf("%s has a line longer than %d octets outside its parts", where, maxLineOctets)}
		}
		s.out = append(s.out, body[pos:p.start]...)
		if err := s.entity(body[p.start:p.end], childPath(path, fmt.Sprint(i+1)), depth+1, childBounds); err != nil {
			return err
		}
		pos = p.end
	}
	if hasLongLine(body[pos:]) { // the epilogue, or parts past the first maxParts
		return &LongLineError{fmt.Sprintf("%s has a line longer than %d octets outside its parts or past its first %d", where, maxLineOctets, maxParts)}
	}
	s.out = append(s.out, body[pos:]...)
	return nil
}

// leaf re-encodes the body of a part that is not a multipart.
func (s *shortener) leaf(head, body []byte, fields []field, where string, bounds []string) error {
	cte := ""
	if f := getField(fields, "Content-Transfer-Encoding"); f != nil {
		cte = strings.ToLower(f.value)
	}
	decoded, err := decodeBody(cte, body)
	if err != nil {
		return &LongLineError{fmt.Sprintf("%s has a line longer than %d octets and %v", where, maxLineOctets, err)}
	}
	endCRLF := bytes.HasSuffix(body, crlf)
	var newBody []byte
	newCTE := encQP
	switch cte {
	case encBase64, "binary":
		newCTE = encBase64
	default:
		newBody = encodeQP(decoded)
		if collides(newBody, bounds) {
			newCTE = encBase64
		}
	}
	if newCTE == encBase64 {
		newBody = encodeBase64(decoded, endCRLF)
	}
	if newCTE != cte {
		head = setTransferEncoding(head, fields, newCTE)
	}
	s.out = append(s.out, head...)
	s.out = append(s.out, newBody...)
	return nil
}

// longField returns the name of the first field of the header block head
// with a line longer than maxLineOctets, or "".
func longField(head []byte, fields []field) string {
	for _, f := range fields {
		if hasLongLine(head[f.start:f.end]) {
			if len(f.name) > 80 { // printable ASCII (parseHeader)
				return f.name[:80] + "…"
			}
			return f.name
		}
	}
	return ""
}

// identityEncoding reports whether an entity's body is as it reads: no
// Content-Transfer-Encoding, or 7bit, 8bit or binary.
func identityEncoding(fields []field) bool {
	f := getField(fields, "Content-Transfer-Encoding")
	if f == nil {
		return true
	}
	switch strings.ToLower(f.value) {
	case "", "7bit", "8bit", "binary":
		return true
	}
	return false
}

func childPath(path, n string) string {
	if path == "" {
		return n
	}
	return path + "." + n
}
