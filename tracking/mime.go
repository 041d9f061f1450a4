package tracking

import (
	"bytes"
	"strings"
)

// This file splits raw MIME into header fields and multipart parts while
// keeping byte offsets, so that untouched bytes can be copied verbatim.
//
// The splitting deliberately follows the algorithm of go-message's
// textproto package (itself a copy of mime/multipart) but only in CRLF mode,
// and it refuses (ok=false) whenever the input is ambiguous or malformed.
// The caller then copies the entity unchanged, so a reader that parses the
// input also parses the output.

var (
	crlf     = []byte("\r\n")
	crlfcrlf = []byte("\r\n\r\n")
)

// field is one header field of an entity.
type field struct {
	name       string // field name, trimmed of spaces and tabs
	value      string // unfolded value, trimmed (as go-message reports it)
	start, end int    // byte range of the field, continuation lines and final CRLF included
	colon      int    // offset of the colon within the header block
}

// headerLen returns the length of the header block at the start of b,
// including the empty line that ends it, or -1 if b has no empty line.
func headerLen(b []byte) int {
	if bytes.HasPrefix(b, crlf) {
		return 2
	}
	i := bytes.Index(b, crlfcrlf)
	if i < 0 {
		return -1
	}
	return i + 4
}

// parseHeader parses a header block as returned by headerLen. It is strict:
// every line must end in CRLF with no other CR or LF, the first line must
// not be a continuation, and field names must be non-empty printable ASCII.
// These are the headers on which go-message and this package necessarily
// agree about where fields, and hence the body, start and end.
func parseHeader(h []byte) ([]field, bool) {
	return readHeader(h, true)
}

// validHeader reports whether parseHeader would accept h, without
// building its fields: scanMultipart checks every part's header, and the
// fields of a header flood (millions of "a:b" lines) would take a hundred
// times the bytes they are read from.
func validHeader(h []byte) bool {
	_, ok := readHeader(h, false)
	return ok
}

// tooManyLines reports whether header block h has more than maxHeaderLines
// lines besides the empty one that ends it.
func tooManyLines(h []byte) bool {
	return bytes.Count(h, crlf) > maxHeaderLines+1
}

// readHeader is parseHeader, which builds the fields only with keep.
func readHeader(h []byte, keep bool) ([]field, bool) {
	var fields []field
	var value []string // value segments of the current field
	seen := false      // whether a field has started
	flush := func() {
		if len(fields) > 0 {
			fields[len(fields)-1].value = strings.Join(value, " ")
		}
		value = value[:0]
	}
	end := len(h) - 2 // leave out the empty line
	for pos := 0; pos < end; {
		i := bytes.Index(h[pos:end+2], crlf)
		if i < 0 {
			return nil, false
		}
		line := h[pos : pos+i]
		next := pos + i + 2
		if bytes.IndexByte(line, '\r') >= 0 || bytes.IndexByte(line, '\n') >= 0 {
			return nil, false
		}
		if line[0] == ' ' || line[0] == '\t' {
			if !seen {
				return nil, false
			}
			if !keep {
				pos = next
				continue
			}
			if v := trimSpaceTab(line); len(v) > 0 {
				value = append(value, string(v))
			}
			fields[len(fields)-1].end = next
			pos = next
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			return nil, false
		}
		name := trimSpaceTab(line[:colon])
		if len(name) == 0 {
			return nil, false
		}
		for _, c := range name {
			if c < 33 || c > 126 {
				return nil, false
			}
		}
		seen = true
		if !keep {
			pos = next
			continue
		}
		flush()
		fields = append(fields, field{name: string(name), start: pos, end: next, colon: pos + colon})
		if v := trimSpaceTab(line[colon+1:]); len(v) > 0 {
			value = append(value, string(v))
		}
		pos = next
	}
	flush()
	return fields, true
}

func trimSpaceTab(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// getField returns the first field called name, as go-message's
// Header.Get does, or nil.
func getField(fields []field, name string) *field {
	for i := range fields {
		if strings.EqualFold(fields[i].name, name) {
			return &fields[i]
		}
	}
	return nil
}

// setTransferEncoding returns a copy of header block h with the value of its
// first Content-Transfer-Encoding field replaced by enc (keeping the field
// name as written), or with such a field added at the end if there is none.
func setTransferEncoding(h []byte, fields []field, enc string) []byte {
	out := make([]byte, 0, len(h)+64)
	if f := getField(fields, "Content-Transfer-Encoding"); f != nil {
		out = append(out, h[:f.colon+1]...)
		out = append(out, ' ')
		out = append(out, enc...)
		out = append(out, crlf...)
		return append(out, h[f.end:]...)
	}
	out = append(out, h[:len(h)-2]...)
	out = append(out, "Content-Transfer-Encoding: "...)
	out = append(out, enc...)
	out = append(out, "\r\n\r\n"...)
	return out
}

// span is a byte range [start, end).
type span struct{ start, end int }

// scanMultipart finds the parts of multipart body b with the given boundary.
// Each span covers one part's header block and body; the bytes between spans
// (preamble, delimiter lines with the CRLF before them, close delimiter and
// epilogue) belong to the multipart itself. ok is false when the body is not
// a well-formed CRLF multipart. At most limit spans are returned: the parts
// after them are checked but not kept, and belong to the epilogue as far as
// the caller is concerned (so 100,000 empty parts do not make 100,000 spans).
func scanMultipart(b []byte, boundary string, limit int) (parts []span, ok bool) {
	dash := []byte("--" + boundary)
	nlDash := []byte("\r\n--" + boundary)

	// Preamble: lines before the first delimiter line are skipped.
	pos := 0
	for {
		line, next := lineAt(b, pos)
		switch {
		case isDelimiter(line, dash):
			pos = next
		case isClose(line, dash):
			return nil, true // no parts at all
		case len(line) == 0 || line[len(line)-1] != '\n':
			return nil, false // no delimiter before the end
		case bytes.HasPrefix(line, dash) && string(trimLWSP(line[len(dash):])) == "\n":
			return nil, false // LF-only delimiter: readers switch to LF mode
		default:
			pos = next
			continue
		}
		break
	}

	for {
		// The part's header block, which readers parse before looking for
		// the next delimiter.
		start := pos
		n := headerLen(b[pos:])
		if n < 0 {
			return nil, false
		}
		if !validHeader(b[pos : pos+n]) {
			return nil, false
		}
		bodyStart := pos + n

		// The body runs up to the CRLF before the next delimiter, or is empty
		// when a delimiter directly follows the header block.
		end, delim := -1, -1
		if bytes.HasPrefix(b[bodyStart:], dash) && matchAfter(b[bodyStart:], len(dash)) {
			end, delim = bodyStart, bodyStart
		} else {
			for from := bodyStart; ; {
				i := bytes.Index(b[from:], nlDash)
				if i < 0 {
					return nil, false // unterminated part
				}
				i += from
				if matchAfter(b[i:], len(nlDash)) {
					end, delim = i, i+2
					break
				}
				from = i + 1
			}
		}
		if len(parts) < limit {
			parts = append(parts, span{start, end})
		}

		line, next := lineAt(b, delim)
		switch {
		case isDelimiter(line, dash):
			pos = next
		case isClose(line, dash):
			return parts, true
		default:
			return nil, false
		}
	}
}

// lineAt returns the line starting at pos, including its '\n' if any, and
// the offset just after it.
func lineAt(b []byte, pos int) ([]byte, int) {
	i := bytes.IndexByte(b[pos:], '\n')
	if i < 0 {
		return b[pos:], len(b)
	}
	return b[pos : pos+i+1], pos + i + 1
}

// isDelimiter matches "--boundary" LWSP* CRLF.
func isDelimiter(line, dash []byte) bool {
	return bytes.HasPrefix(line, dash) && string(trimLWSP(line[len(dash):])) == "\r\n"
}

// isClose matches "--boundary--" LWSP* [CRLF].
func isClose(line, dash []byte) bool {
	if !bytes.HasPrefix(line, dash) || !bytes.HasPrefix(line[len(dash):], []byte("--")) {
		return false
	}
	rest := trimLWSP(line[len(dash)+2:])
	return len(rest) == 0 || string(rest) == "\r\n"
}

func trimLWSP(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}

// matchAfter reports whether the n-byte boundary prefix at the start of b
// counts as a boundary for multipart readers: it must be followed by the end
// of input, a dash, or white space (mime/multipart's matchAfterPrefix).
func matchAfter(b []byte, n int) bool {
	if len(b) == n {
		return true
	}
	switch b[n] {
	case ' ', '\t', '\r', '\n', '-':
		return true
	}
	return false
}

// collides reports whether a new part body would be taken for a delimiter of
// one of the enclosing multiparts (whose "--boundary" strings are bounds).
// It errs on the safe side: an LF alone also counts as a line start, and the
// end of body counts as a match because a CRLF always follows it.
func collides(body []byte, bounds []string) bool {
	for _, d := range bounds {
		dash := []byte(d)
		for from := 0; ; {
			i := bytes.Index(body[from:], dash)
			if i < 0 {
				break
			}
			i += from
			if (i == 0 || body[i-1] == '\n') && matchAfter(body[i:], len(dash)) {
				return true
			}
			from = i + 1
		}
	}
	return false
}
