// Package tracking rewrites outgoing MIME for open and click tracking and signs the ids that tracking URLs carry.
package tracking

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"slices"
	"strconv"
	"strings"
)

// Limits on the MIME tree Rewrite walks. Anything deeper, beyond the part
// count or under a longer header is copied unchanged and reported in
// Result.Warnings. Copying is cheap; what the limits bound is the parsing:
// without them a 25 MB message of 100,000 empty parts, or of one part with
// millions of header lines, takes seconds and gigabytes per recipient.
const (
	maxDepth       = 50     // nested multipart levels below the top-level entity
	maxParts       = 1000   // parts visited in the whole message
	maxHeaderLines = 10_000 // lines of one entity's header (as Go's mime/multipart allows per part)
)

// Options say what to add to one recipient's copy.
type Options struct {
	Opens    bool
	Clicks   bool
	PixelURL string                              // absolute URL of the open pixel for this copy
	ClickURL func(index int, dest string) string // absolute tracking URL for link #index (0-based, document order) whose decoded destination is dest
	// PixelTop puts the pixel right after <body> instead of before </body>.
	// HTML over TopPixelThreshold bytes gets it there anyway: Gmail clips
	// long messages, and a pixel below the cut never loads.
	PixelTop bool
	// TextLinks, with Clicks, also rewrites bare http(s) URLs in text/plain
	// parts.
	TextLinks bool

	untracked []string // the message's List-Unsubscribe URLs, set by Rewrite
}

// Result reports what Rewrite did.
type Result struct {
	Links    []string // decoded destination URLs, by link index
	Changed  bool     // false when the output is byte-identical to the input
	Warnings []string // e.g. a part that could not be parsed and was left unchanged
	// Found, with Clicks, is every link of the parts rewritten, tracked or
	// not, in document order: what a preview shows of them.
	Found []Link

	entities int // entities whose header was parsed: the work the limits bound
}

// Link is a link Rewrite found: tracked (Reason empty, Index its link
// index, in Result.Links) or left as it was (Index -1) for Reason.
type Link struct {
	URL    string // the decoded, trimmed href or text URL
	Index  int
	Reason string
}

// Why a link stays untracked (Link.Reason); the links.go comment and
// docs/tracking.md say why each rule exists.
const (
	ReasonNoTrack     = "marked data-sp-notrack"
	ReasonUnsubscribe = "a target of the List-Unsubscribe header"
	ReasonSecret      = "carries a one-time secret (mark it data-sp-track to track it)"
	ReasonRelative    = "not an absolute URL (relative link or fragment)"
	ReasonPartKept    = "its part was left unchanged (see the warnings)"
	// A link of another scheme has the reason "a <scheme>: link": only
	// http and https links are tracked.
)

// Rewrite copies the RFC 5322 message from src to dst, adding the pixel and
// rewriting links in every text/html part.
//
// The input is expected to use CRLF line endings. Only the bodies of
// text/html parts that are not attachments are rewritten (and, when a 7bit
// or 8bit body would get a line longer than 998 octets, that part's
// Content-Transfer-Encoding header); every other byte is copied unchanged.
// Parts inside message/rfc822 attachments are not looked at.
//
// With Clicks, the href of every <a> tag whose entity-decoded, trimmed href
// is an absolute http or https URL becomes ClickURL(index, href). Links with
// a data-sp-notrack attribute are not rewritten, and the attribute is
// removed; so are the List-Unsubscribe targets and links carrying one-time
// secrets unless marked data-sp-track (links.go). With TextLinks, bare URLs
// in text/plain parts that are not attachments are rewritten the same way.
// With Opens, a 1x1 image of PixelURL goes before the last </body> tag,
// else at the end of the HTML (but before an unclosed <title>, <style> or
// the like, where it would show as text); with PixelTop, or for HTML over
// TopPixelThreshold bytes, it goes right after <body> instead.
//
// Anything Rewrite cannot make sense of is copied unchanged and reported in
// Result.Warnings, so the output is never less well-formed than the input.
// The error is non-nil only when reading src or writing dst fails.
//
// ClickURL may be called for a link of a part that ends up unchanged (for
// example when the re-encoded part would clash with a multipart boundary);
// Result.Links is the authoritative list of rewritten links.
func Rewrite(dst io.Writer, src io.Reader, opts Options) (Result, error) {
	if !opts.Opens && !opts.Clicks {
		_, err := io.Copy(dst, src)
		return Result{}, err
	}
	hint := 0
	if l, ok := src.(interface{ Len() int }); ok { // bytes.Reader and the like
		hint = l.Len()
	}
	in, err := readAll(src, hint)
	if err != nil {
		return Result{}, err
	}
	return RewriteBytes(dst, in, opts)
}

// RewriteBytes is Rewrite of a message the caller holds already: it reads
// in without copying it (nor changing it), so that a large message is not
// held once more.
func RewriteBytes(dst io.Writer, in []byte, opts Options) (Result, error) {
	if !opts.Opens && !opts.Clicks {
		_, err := dst.Write(in)
		return Result{}, err
	}
	// Build the output in dst's spare room when dst is a bytes.Buffer: the
	// final Write is then a copy onto itself, and a large message is not
	// held once more in between.
	want := len(in) + len(in)/8 + 512
	var buf []byte
	if b, ok := dst.(*bytes.Buffer); ok {
		if b.Available() < want {
			b.Grow(want)
		}
		buf = b.AvailableBuffer()
	} else {
		buf = make([]byte, 0, want)
	}
	rw := newRewriter(opts, nil, in)
	rw.out = buf
	rw.entity(in, "", 0, nil)

	out := in
	if rw.changed {
		out = rw.out
	}
	n, err := dst.Write(out)
	if err == nil && n < len(out) {
		err = io.ErrShortWrite
	}
	return rw.result(), err
}

// AppendRewrite is RewriteBytes of the message whose header block, blank
// line included, is head and whose body is body, appended to dst: for a
// caller that holds the two apart (the pipeline, which edits the header),
// so that they are not joined into one more copy of the message first. It
// needs room in dst for the message and an eighth more, or it allocates.
func AppendRewrite(dst, head, body []byte, opts Options) ([]byte, Result) {
	if (!opts.Opens && !opts.Clicks) || headerLen(head) != len(head) {
		// Not a header block on its own: rewrite the message joined.
		var b bytes.Buffer
		b.Grow(len(head) + len(body))
		b.Write(head)
		b.Write(body)
		var out bytes.Buffer
		res, _ := RewriteBytes(&out, b.Bytes(), opts) // writes to a bytes.Buffer cannot fail
		return append(dst, out.Bytes()...), res
	}
	start := len(dst)
	rw := newRewriter(opts, head, nil)
	rw.out = slices.Grow(dst, len(head)+len(body)+len(body)/8+512)
	rw.entityParts(head, body, "", 0, nil)
	if !rw.changed {
		rw.out = append(append(rw.out[:start], head...), body...)
	}
	return rw.out, rw.result()
}

// newRewriter checks opts and reads the List-Unsubscribe targets from the
// message's header block, head, or the start of msg when head is nil.
func newRewriter(opts Options, head, msg []byte) *rewriter {
	rw := &rewriter{opts: opts}
	if rw.opts.Clicks && rw.opts.ClickURL == nil {
		rw.opts.Clicks = false
		rw.warnf("", "click tracking requested without a ClickURL; links left unchanged")
	}
	if rw.opts.Opens && rw.opts.PixelURL == "" {
		rw.opts.Opens = false
		rw.warnf("", "open tracking requested without a PixelURL; no pixel added")
	}
	if head == nil {
		if n := headerLen(msg); n > 0 {
			head = msg[:n]
		}
	}
	if len(head) > 0 && !tooManyLines(head) {
		if fields, ok := parseHeader(head); ok {
			for _, f := range fields {
				if strings.EqualFold(f.name, "List-Unsubscribe") {
					rw.opts.untracked = append(rw.opts.untracked, listUnsubscribeURLs(f.value)...)
				}
			}
		}
	}
	return rw
}

// result is the Result of the rewrite done.
func (rw *rewriter) result() Result {
	rw.res.Changed = rw.changed
	rw.res.entities = rw.entities
	return rw.res
}

// rewriter holds the state of one Rewrite call. Output is appended to out;
// unchanged regions are copied from the input verbatim.
type rewriter struct {
	opts        Options
	res         Result
	out         []byte
	changed     bool
	parts       int  // parts visited so far, for maxParts
	warnedParts bool // whether the maxParts warning was given
	entities    int  // headers parsed, for Result.entities
}

func (rw *rewriter) warnf(path, format string, args ...any) {
	where := "message"
	if path != "" {
		where = "part " + path
	}
	rw.res.Warnings = append(rw.res.Warnings, where+": "+fmt.Sprintf(format, args...))
}

// entity rewrites one entity (header block and body) whose raw bytes are
// raw, appending the result to rw.out. path names the entity in warnings
// ("" for the message, "1.2" for the second part of the first part), depth
// is its multipart nesting level and bounds holds the "--boundary" strings of
// all enclosing multiparts.
func (rw *rewriter) entity(raw []byte, path string, depth int, bounds []string) {
	n := headerLen(raw)
	if n < 0 {
		// Header fields only, no body: nothing to rewrite. An LF-only
		// message looks like this too; say so, as it is not expected.
		if path == "" && bytes.Contains(raw, []byte("\n\n")) {
			rw.warnf(path, "no CRLF blank line after the header; left unchanged")
		}
		rw.emit(raw)
		return
	}
	rw.entityParts(raw[:n], raw[n:], path, depth, bounds)
}

// entityParts is entity of the entity whose header block (up to and with
// its blank line) is head and whose body is body.
func (rw *rewriter) entityParts(head, body []byte, path string, depth int, bounds []string) {
	if tooManyLines(head) {
		rw.warnf(path, "header of more than %d lines; left unchanged", maxHeaderLines)
		rw.emit(head, body)
		return
	}
	rw.entities++
	fields, ok := parseHeader(head)
	if !ok {
		rw.warnf(path, "malformed header; left unchanged")
		rw.emit(head, body)
		return
	}

	// Interpret Content-Type the way go-message does: an empty or missing
	// field means text/plain.
	ctype := "text/plain"
	if f := getField(fields, "Content-Type"); f != nil && f.value != "" {
		ctype = f.value
	}
	mt, params, err := mime.ParseMediaType(ctype)
	if err != nil {
		if lt := strings.ToLower(ctype); strings.HasPrefix(lt, "multipart/") || strings.HasPrefix(lt, "text/html") {
			rw.warnf(path, "unparseable Content-Type %q; left unchanged", ctype)
		}
		rw.emit(head, body)
		return
	}

	switch {
	case strings.HasPrefix(mt, "multipart/"):
		rw.multipart(head, body, params["boundary"], path, depth, bounds)
	case mt == "text/html" && !isAttachment(fields):
		rw.textPart(head, body, fields, params, path, bounds, func(dst, decoded []byte) partResult {
			return rewriteHTMLSkipping(dst, decoded, &rw.opts, len(rw.res.Links), minSkip)
		})
	case mt == "text/plain" && rw.opts.Clicks && rw.opts.TextLinks && !isAttachment(fields):
		rw.textPart(head, body, fields, params, path, bounds, func(dst, decoded []byte) partResult {
			p := rewriteText(decoded, &rw.opts, len(rw.res.Links))
			p.out = append(dst, p.out...)
			return p
		})
	default:
		rw.emit(head, body)
	}
}

// multipart rewrites the parts of a multipart entity, keeping the preamble,
// delimiter lines and epilogue byte for byte. Multipart bodies cannot have a
// transfer encoding of their own (RFC 2045 section 6.4; go-message ignores
// it too), so the body is split as is.
func (rw *rewriter) multipart(head, body []byte, boundary, path string, depth int, bounds []string) {
	if depth >= maxDepth {
		rw.warnf(path, "multipart nested deeper than %d levels; left unchanged", maxDepth)
		rw.emit(head, body)
		return
	}
	// go-message decodes RFC 2047 encoded words in parameters; rather than
	// guessing which boundary a reader would use, leave such parts alone.
	if boundary == "" || strings.Contains(boundary, "=?") {
		rw.warnf(path, "multipart without a usable boundary; left unchanged")
		rw.emit(head, body)
		return
	}
	// One span past the limit, for the part that gets the warning; the
	// parts after it go out with the epilogue.
	parts, ok := scanMultipart(body, boundary, maxParts-rw.parts+1)
	if !ok {
		rw.warnf(path, "malformed multipart structure; left unchanged")
		rw.emit(head, body)
		return
	}

	// Full slice expression so that children of different parts never
	// share (and overwrite) the backing array.
	childBounds := append(bounds[:len(bounds):len(bounds)], "--"+boundary)
	rw.emit(head)
	pos := 0
	for i, p := range parts {
		rw.emit(body[pos:p.start])
		child := strconv.Itoa(i + 1)
		if path != "" {
			child = path + "." + child
		}
		rw.parts++
		if rw.parts > maxParts {
			if !rw.warnedParts {
				rw.warnedParts = true
				rw.warnf(child, "message has more than %d parts; this and later parts left unchanged", maxParts)
			}
			rw.emit(body[p.start:p.end])
		} else {
			rw.entity(body[p.start:p.end], child, depth+1, childBounds)
		}
		pos = p.end
	}
	rw.emit(body[pos:])
}

// partResult is what rewriting the content of one text part did.
type partResult struct {
	out      []byte   // the content, after the dst it was appended to
	links    []string // decoded destinations of the rewritten links, in order
	found    []Link   // with Clicks, every link, tracked or not, in order
	warnings []string
}

// textPart rewrites a text/html or text/plain body: it decodes the transfer
// encoding, rewrites the content with transform and re-encodes it the same
// way. transform appends the content to dst. With a transfer encoding that
// leaves the content as it is (7bit, 8bit, binary), the header is written
// first and the content appended to it: a large HTML part is written once,
// where it stays unless it must be re-encoded after all.
func (rw *rewriter) textPart(head, body []byte, fields []field, params map[string]string, path string, bounds []string,
	transform func(dst, decoded []byte) partResult) {
	// Nothing to track in an empty part. Leaving it alone also matters for
	// structure: in a multipart the next delimiter may follow its header
	// block directly, with no line break that new content could end with.
	if len(body) == 0 {
		rw.emit(head, body)
		return
	}
	// The rewrite inserts ASCII markup, which is only right for charsets in
	// which ASCII bytes stand for themselves.
	if cs := strings.ToLower(params["charset"]); !asciiCompatible(cs) {
		rw.warnf(path, "charset %q is not ASCII-compatible; left unchanged", cs)
		rw.emit(head, body)
		return
	}
	cte := ""
	if f := getField(fields, "Content-Transfer-Encoding"); f != nil {
		cte = strings.ToLower(f.value)
	}
	decoded, err := decodeBody(cte, body)
	if err != nil {
		rw.warnf(path, "%v; left unchanged", err)
		rw.emit(head, body)
		return
	}

	start := len(rw.out)
	inPlace := identityEncoding(fields)
	var dst []byte
	if inPlace {
		rw.emit(head)
		dst = rw.out
	}
	p := transform(dst, decoded)
	out := p.out[len(dst):]
	rw.out = rw.out[:start] // until the output in place is known to stand
	for _, w := range p.warnings {
		rw.warnf(path, "%s", w)
	}
	if bytes.Equal(out, decoded) {
		rw.found(p.found, false)
		rw.emit(head, body)
		return
	}

	newBody, newCTE := encodeBody(cte, out, bytes.HasSuffix(body, crlf))
	if collides(newBody, bounds) {
		rw.warnf(path, "rewritten body would contain a multipart boundary; left unchanged")
		rw.found(p.found, false)
		rw.emit(head, body)
		return
	}
	if inPlace && newCTE == cte {
		rw.out = p.out // head and content, as written
	} else {
		// newBody is not in rw.out's spare room: re-encoded, or made apart.
		if newCTE != cte {
			head = setTransferEncoding(head, fields, newCTE)
		}
		rw.emit(head)
		rw.emit(newBody)
	}
	rw.res.Links = append(rw.res.Links, p.links...)
	rw.found(p.found, true)
	rw.changed = true
}

// found adds the links of a part to Result.Found: as they are when the
// part's rewrite was kept, else untracked, their part being left as it was.
func (rw *rewriter) found(links []Link, kept bool) {
	for _, l := range links {
		if !kept && l.Reason == "" {
			l.Index, l.Reason = -1, ReasonPartKept
		}
		rw.res.Found = append(rw.res.Found, l)
	}
}

func (rw *rewriter) emit(b ...[]byte) {
	for _, p := range b {
		rw.out = append(rw.out, p...)
	}
}

// isAttachment reports whether the entity's Content-Disposition is
// "attachment". The disposition type is compared on its own so that a
// malformed parameter list does not hide it.
func isAttachment(fields []field) bool {
	f := getField(fields, "Content-Disposition")
	if f == nil {
		return false
	}
	disp, _, _ := strings.Cut(f.value, ";")
	return strings.EqualFold(strings.TrimSpace(disp), "attachment")
}

// asciiCompatible reports whether charset cs (lower case, "" if absent)
// encodes ASCII as single ASCII bytes, so that markup can be found and
// inserted without converting the charset.
func asciiCompatible(cs string) bool {
	for _, p := range []string{"utf-16", "utf16", "utf-32", "utf32", "ucs-2", "ucs2", "ucs-4", "ucs4", "utf-7", "utf7", "unicode"} {
		if strings.HasPrefix(cs, p) {
			return false
		}
	}
	return true
}
