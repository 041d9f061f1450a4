package tracking

import (
	"bytes"
	"html"
	"slices"
	"strings"

	xhtml "golang.org/x/net/html"
)

// noTrackAttr marks a link that must not be tracked; trackAttr marks a link
// carrying a one-time secret that must be tracked all the same (see
// secretLink). Both are removed from the output so that recipients never
// see them.
const (
	noTrackAttr = "data-sp-notrack"
	trackAttr   = "data-sp-track"
)

// TopPixelThreshold is the size of HTML (decoded, in bytes) above which the
// pixel goes at the top: Gmail clips messages over about 102 KB, and a pixel
// below the cut never loads.
const TopPixelThreshold = 100 * 1024

// pixelTag returns the open-tracking image for pixelURL.
func pixelTag(pixelURL string) string {
	return `<img src="` + html.EscapeString(pixelURL) + `" width="1" height="1" alt="" style="display:none;border:0;width:1px;height:1px" />`
}

// rawTextTags are the elements after whose start tag the tokenizer reads raw
// text up to the matching end tag (see x/net/html's readStartTag).
var rawTextTags = []string{"iframe", "noembed", "noframes", "noscript", "plaintext", "script", "style", "textarea", "title", "xmp"}

// rewriteHTML rewrites the links of src and adds the open pixel as opts ask.
// Links get tracking indexes from first on. Every token it does not change is
// copied as its raw bytes, so the rest of the markup is preserved exactly.
func rewriteHTML(src []byte, opts *Options, first int) partResult {
	return rewriteHTMLSkipping(nil, src, opts, first, minSkip)
}

// minSkip is the least run of markup that rewriteHTML copies through
// without the tokenizer (skipInert): a shorter one is not worth a new
// tokenizer (a 4 KiB buffer) after it.
const minSkip = 1024

// rewriteHTMLSkipping is rewriteHTML appending to dst, and copying runs of
// at least skip bytes that hold nothing it acts on straight to the output
// (skip <= 0: never). The output is the same whatever skip is
// (TestRewriteHTMLSkipSame, FuzzRewriteHTMLSkip).
func rewriteHTMLSkipping(dst, src []byte, opts *Options, first, skip int) partResult {
	var pixel string
	if opts.Opens {
		pixel = pixelTag(opts.PixelURL)
	}
	// Room for the pixel too: inserted last, it would otherwise copy the
	// whole output once more when the links have taken the spare room.
	r := partResult{out: dst}
	if dst == nil {
		r.out = make([]byte, 0, len(src)+len(src)/4+256+len(pixel))
	} else {
		// The caller leaves spare room for the links (RewriteBytes: an
		// eighth); append grows it if they need more.
		r.out = slices.Grow(dst, len(src)+len(pixel)+256)
	}
	// With the pixel at the top, it goes after the first <body> (else
	// after </head> or the prolog, found at the end).
	top := opts.Opens && (opts.PixelTop || len(src) > TopPixelThreshold)
	z := xhtml.NewTokenizer(bytes.NewReader(src))
	pos := 0     // offset in src of the next token
	scanned := 0 // skipInert has looked at src up to here

	bodyEnd := -1        // offset in r.out of the last </body> tag
	bodyStart := -1      // offset in r.out after the first <body> tag
	headEnd := -1        // offset in r.out after the first </head> tag
	prolog := len(r.out) // offset in r.out after the leading doctype, comments, white space and <html>
	inProlog := true     // still in that leading run
	safe := len(r.out)   // last offset in r.out between two tokens in the data state
	inRaw := false       // inside a raw text element such as <style>
	for {
		// Between two tokens in the data state, past the prolog and outside
		// raw text, the tokenizer may be left out over the markup up to the
		// next thing that matters: that markup is copied as it is, and a new
		// tokenizer starts there, in the same state the old one would be in.
		if skip > 0 && !inProlog && !inRaw && pos >= scanned {
			end := skipInert(src, pos)
			scanned = end + 1
			if end-pos >= skip {
				r.out = append(r.out, src[pos:end]...)
				safe = len(r.out) // every token skipped sets it (see below)
				pos = end
				z = xhtml.NewTokenizer(bytes.NewReader(src[pos:]))
			}
		}
		tt := z.Next()
		start := len(r.out)
		// Copy the raw bytes before anything else asks the tokenizer about
		// the token. At the end of input (ErrorToken) Raw holds whatever
		// could not be tokenized, such as a tag cut short.
		raw := z.Raw()
		pos += len(raw)
		r.out = append(r.out, raw...)
		if tt == xhtml.ErrorToken {
			break
		}
		tok := r.out[start:]
		switch tt {
		case xhtml.StartTagToken, xhtml.SelfClosingTagToken:
			name := tagName(tok[1:])
			if asciiEqualFold(name, "a") {
				r.anchor(z, start, opts, first)
			} else if slices.ContainsFunc(rawTextTags, func(t string) bool { return asciiEqualFold(name, t) }) {
				inRaw = true // even when self-closing, as for the tokenizer
			}
			if bodyStart < 0 && asciiEqualFold(name, "body") {
				if top {
					// Its place at the top is known: put it there now
					// rather than move the rest of the output for it.
					r.out = append(r.out, pixel...)
				}
				bodyStart = len(r.out)
			}
			if inProlog && asciiEqualFold(name, "html") {
				prolog = len(r.out)
			} else {
				inProlog = false
			}
		case xhtml.EndTagToken:
			// In raw text the tokenizer only ever returns the end tag of
			// the open element.
			inRaw = false
			name := tagName(tok[2:])
			if asciiEqualFold(name, "body") {
				bodyEnd = start
			}
			if headEnd < 0 && asciiEqualFold(name, "head") {
				headEnd = len(r.out)
			}
			inProlog = false
		case xhtml.DoctypeToken, xhtml.CommentToken:
			if inProlog && commentClosed(tok) {
				prolog = len(r.out)
			} else {
				inProlog = false
			}
		case xhtml.TextToken:
			if inProlog && len(bytes.TrimLeft(tok, " \t\r\n\f")) == 0 {
				prolog = len(r.out)
			} else {
				inProlog = false
			}
		}

		// Track where the pixel could go if there is no </body>: not inside
		// raw text, where it would show as text, nor inside a comment or
		// declaration cut short by the end of input, which would swallow it.
		switch {
		case inRaw:
		case tt == xhtml.CommentToken || tt == xhtml.DoctypeToken:
			if commentClosed(tok) {
				safe = len(r.out)
			}
		case tt == xhtml.TextToken && bytes.HasSuffix(tok, []byte("</")):
			// "</" at the end of input followed by "<img" would make a
			// bogus comment.
			safe = len(r.out) - 2
		default:
			safe = len(r.out)
		}
	}

	if opts.Opens && !(top && bodyStart >= 0) {
		at := safe
		switch {
		case top:
			// At the top: after <body>, else after </head>, else after the
			// prolog (never before a doctype, which would change the
			// rendering mode).
			switch { // no <body>: placed already if there was one
			case headEnd >= 0:
				at = headEnd
			default:
				at = min(prolog, safe)
			}
		case bodyEnd >= 0:
			at = bodyEnd
		}
		r.out = slices.Insert(r.out, at, []byte(pixel)...)
	}
	return r
}

// skipInert returns the end of the run of src from pos, a token boundary
// in the data state, that the tokenizer would read as text and as start and
// end tags that rewriteHTML does nothing with: it stops at an <a>, <body>
// or raw text start tag (rawTextTags), a </body> or </head> end tag, at
// anything else that is not text or a complete tag (a comment, a doctype,
// a "</" not followed by a letter, input ending inside a tag), and at the
// end of src. The end is a token boundary too. Tags are read as the
// tokenizer's readTag reads them (tagEnd), so that a '>' inside a quoted
// attribute value does not end one.
func skipInert(src []byte, pos int) int {
	i := pos
	for {
		j := bytes.IndexByte(src[i:], '<')
		if j < 0 {
			return len(src)
		}
		i += j
		if i+1 >= len(src) {
			return i
		}
		c := src[i+1]
		switch {
		case isASCIILetter(c):
			name := tagName(src[i+1:])
			if asciiEqualFold(name, "a") || asciiEqualFold(name, "body") ||
				slices.ContainsFunc(rawTextTags, func(t string) bool { return asciiEqualFold(name, t) }) {
				return i
			}
			end := tagEnd(src, i+1)
			if end < 0 {
				return i
			}
			i = end
		case c == '/':
			if i+2 >= len(src) || !isASCIILetter(src[i+2]) {
				return i
			}
			name := tagName(src[i+2:])
			if asciiEqualFold(name, "body") || asciiEqualFold(name, "head") {
				return i
			}
			end := tagEnd(src, i+2)
			if end < 0 {
				return i
			}
			i = end
		case c == '!' || c == '?':
			return i
		default:
			i++ // text: the tokenizer reads the next byte again
		}
	}
}

func isASCIILetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// tagEnd returns the offset after the '>' that ends the tag whose name
// starts at src[j], reading it step by step as x/net/html's readTag,
// readTagName, readTagAttrKey and readTagAttrVal do (as scanAttrs does for
// a tag already cut out), or -1 when src ends first (the tokenizer's
// ErrorToken).
func tagEnd(src []byte, j int) int {
	skipSpace := func() {
		for j < len(src) && isHTMLSpace(src[j]) {
			j++
		}
	}
	// readTagName: the first letter is read; the name ends after white
	// space or before '/' or '>'.
	for j++; j < len(src); j++ {
		if c := src[j]; isHTMLSpace(c) {
			j++
			break
		} else if c == '/' || c == '>' {
			break
		}
	}
	skipSpace()
	for j < len(src) {
		if src[j] == '>' {
			return j + 1
		}
		// readTagAttrKey: an '=' is part of the name only as its first byte.
		for start := j; ; j++ {
			if j >= len(src) {
				return -1
			}
			c := src[j]
			if isHTMLSpace(c) || c == '/' || c == '>' || (c == '=' && j > start) {
				break
			}
		}
		// readTagAttrVal
		skipSpace()
		if j >= len(src) {
			return -1
		}
		switch src[j] {
		case '/':
			j++
		case '=':
			j++
			skipSpace()
			if j >= len(src) {
				return -1
			}
			switch q := src[j]; q {
			case '>':
			case '"', '\'':
				k := bytes.IndexByte(src[j+1:], q)
				if k < 0 {
					return -1
				}
				j += k + 2
			default:
				for j++; j < len(src) && !isHTMLSpace(src[j]) && src[j] != '>'; j++ {
				}
				if j < len(src) && isHTMLSpace(src[j]) {
					j++
				}
			}
		}
		skipSpace()
	}
	return -1
}

// anchor rewrites the <a> start tag at r.out[start:], the current token of z.
func (r *partResult) anchor(z *xhtml.Tokenizer, start int, opts *Options, first int) {
	tag := r.out[start:]
	attrs := scanAttrs(tag)

	// Check that the scanner found the attributes the tokenizer did (it
	// keeps the first of duplicate names and drops empty names); the href
	// value comes from the tokenizer, entity-decoded.
	href, hrefVal := -1, ""
	var remove []int // data-sp-notrack and data-sp-track attributes
	notrack, force := false, false
	for i, a := range attrs {
		key := tag[a.keyStart:a.keyEnd]
		if asciiEqualFold(key, noTrackAttr) {
			remove, notrack = append(remove, i), true
		}
		if asciiEqualFold(key, trackAttr) {
			remove, force = append(remove, i), true
		}
		if len(key) == 0 || isDuplicate(tag, attrs[:i], key) {
			continue
		}
		k, v, _ := z.TagAttr()
		if !asciiEqualFold(key, k) {
			r.warnings = append(r.warnings, "could not match the attributes of an <a> tag; left unchanged")
			return
		}
		if string(k) == "href" {
			href, hrefVal = i, string(v)
		}
	}
	if k, _, _ := z.TagAttr(); k != nil {
		r.warnings = append(r.warnings, "could not match the attributes of an <a> tag; left unchanged")
		return
	}

	// Rewrite the href unless the link stays untracked.
	dest := strings.Trim(hrefVal, " \t\n\f\r")
	rewrite := false
	if opts.Clicks && href >= 0 && attrs[href].valueStart >= 0 {
		reason := ReasonNoTrack
		if !notrack {
			reason = untracked(dest, opts, force)
		}
		r.note(dest, first, reason)
		rewrite = reason == ""
	}
	if !rewrite && len(remove) == 0 {
		return
	}
	// Edit from the last attribute to the first, so that the offsets of
	// those not yet edited stay valid.
	newTag := bytes.Clone(tag)
	for i := len(attrs) - 1; i >= 0; i-- {
		a := attrs[i]
		switch {
		case slices.Contains(remove, i):
			newTag = removeAttr(newTag, a)
		case i == href && rewrite:
			url := opts.ClickURL(first+len(r.links), dest)
			r.links = append(r.links, dest)
			edited := make([]byte, 0, len(newTag)+len(url)+16)
			edited = append(edited, newTag[:a.valueStart]...)
			edited = append(edited, '"')
			edited = append(edited, html.EscapeString(url)...)
			edited = append(edited, '"')
			newTag = append(edited, newTag[a.end:]...)
		}
	}
	r.out = append(r.out[:start], newTag...)
}

// untracked returns why a link to dest (decoded and trimmed) keeps its
// URL, or "" when it gets a tracking URL: an absolute http(s) URL that is
// not the message's List-Unsubscribe target and, unless force
// (data-sp-track), carries no one-time secret.
func untracked(dest string, opts *Options, force bool) string {
	switch {
	case !isHTTP(dest):
		if scheme := schemeOf(dest); scheme != "" {
			return "a " + scheme + ": link"
		}
		return ReasonRelative
	case slices.Contains(opts.untracked, dest):
		return ReasonUnsubscribe
	case !force && secretLink(dest):
		return ReasonSecret
	}
	return ""
}

// note records a link of the part in r.found: tracked (reason "") with
// the index it is about to get, or untracked for reason.
func (r *partResult) note(dest string, first int, reason string) {
	l := Link{URL: dest, Index: -1, Reason: reason}
	if reason == "" {
		l.Index = first + len(r.links)
	}
	r.found = append(r.found, l)
}

// schemeOf returns the scheme of an absolute URL, lower-cased (RFC 3986
// section 3.1: a letter, then letters, digits, '+', '-' and '.', then
// ':'), or "" for a relative reference.
func schemeOf(u string) string {
	i := strings.IndexByte(u, ':')
	if i < 1 {
		return ""
	}
	for j := range i {
		c := u[j]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || j > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return ""
		}
	}
	return strings.ToLower(u[:i])
}

// isDuplicate reports whether one of the earlier attributes has name key.
func isDuplicate(tag []byte, earlier []attr, key []byte) bool {
	for _, a := range earlier {
		if asciiEqualFold(tag[a.keyStart:a.keyEnd], key) {
			return true
		}
	}
	return false
}

// isHTTP reports whether s is an absolute http or https URL.
func isHTTP(s string) bool {
	for _, p := range []string{"http://", "https://"} {
		if len(s) > len(p) && strings.EqualFold(s[:len(p)], p) {
			return true
		}
	}
	return false
}

// attr locates one attribute within the raw bytes of a start tag.
type attr struct {
	keyStart, keyEnd int
	valueStart       int // offset of the value, opening quote included; -1 if there is no '='
	end              int // end of the attribute: after the closing quote or last value byte
}

func isHTMLSpace(c byte) bool {
	return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\f'
}

// tagName returns the tag name at the start of b (after "<" or "</"),
// ending where the tokenizer's readTagName ends it.
func tagName(b []byte) []byte {
	i := 1 // the tokenizer only starts a tag at an ASCII letter
	for i < len(b) && !isHTMLSpace(b[i]) && b[i] != '/' && b[i] != '>' {
		i++
	}
	return b[:min(i, len(b))]
}

// scanAttrs finds the attributes of the complete start tag tag ("<a ...>").
// It mirrors x/net/html's Tokenizer.readTag, readTagAttrKey and
// readTagAttrVal step by step, so that it finds the same attributes; the
// caller checks that it did.
func scanAttrs(tag []byte) []attr {
	var attrs []attr
	i := 1 + len(tagName(tag[1:]))
	skip := func() {
		for i < len(tag) && isHTMLSpace(tag[i]) {
			i++
		}
	}
	skip()
	for i < len(tag) && tag[i] != '>' {
		a := attr{keyStart: i, valueStart: -1}
		// Attribute name. An '=' is part of the name only as its first byte.
		for i < len(tag) {
			c := tag[i]
			if isHTMLSpace(c) || c == '/' || c == '>' || (c == '=' && i > a.keyStart) {
				break
			}
			i++
		}
		a.keyEnd, a.end = i, i
		// Value, if an '=' follows.
		skip()
		switch {
		case i < len(tag) && tag[i] == '/':
			i++
		case i < len(tag) && tag[i] == '=':
			i++
			skip()
			a.end = i
			if i >= len(tag) || tag[i] == '>' {
				break
			}
			a.valueStart = i
			if q := tag[i]; q == '"' || q == '\'' {
				j := bytes.IndexByte(tag[i+1:], q)
				if j < 0 {
					i = len(tag)
				} else {
					i += j + 2
				}
				a.end = i
			} else {
				for i < len(tag) && !isHTMLSpace(tag[i]) && tag[i] != '>' {
					i++
				}
				a.end = i
			}
		}
		attrs = append(attrs, a)
		skip()
	}
	return attrs
}

// removeAttr removes attribute a from tag, together with white space that
// separated it from its neighbours, taking care not to join what remains.
func removeAttr(tag []byte, a attr) []byte {
	start, end := a.keyStart, a.end
	switch {
	case end < len(tag) && isHTMLSpace(tag[end]):
		// The white space after it: "<a X href>" -> "<a href>".
		for end < len(tag) && isHTMLSpace(tag[end]) {
			end++
		}
	case end >= len(tag) || tag[end] == '>':
		// The white space before it: "<a href X>" -> "<a href>".
		for start > 0 && isHTMLSpace(tag[start-1]) {
			start--
		}
	}
	// Otherwise something follows directly ("<a X=""y>", "<a b=c X/>"):
	// keep the white space before it so that it stays separate.
	return append(tag[:start], tag[end:]...)
}

// commentClosed reports whether a comment token's raw bytes are complete.
// The tokenizer also returns comments cut short by the end of input.
func commentClosed(tok []byte) bool {
	if bytes.HasPrefix(tok, []byte("<!--")) {
		return bytes.HasSuffix(tok, []byte("-->")) || bytes.HasSuffix(tok, []byte("--!>"))
	}
	return bytes.HasSuffix(tok, []byte(">"))
}

// asciiEqualFold is strings.EqualFold for ASCII only, as HTML tag and
// attribute names are compared.
func asciiEqualFold[S1, S2 ~string | ~[]byte](b S1, s S2) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c, d := b[i], s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}
