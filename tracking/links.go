package tracking

import (
	"bytes"
	"net/url"
	"slices"
	"strings"
)

// Links that stay untracked, besides those the HTML rewriter skips by their
// scheme (mailto:, tel:, sms:, javascript: …), fragments and relative links,
// and those marked data-sp-notrack:
//
//   - the targets of the message's List-Unsubscribe header (RFC 2369,
//     RFC 8058): mailbox providers and users must reach them directly;
//   - links carrying a one-time secret, unless marked data-sp-track: a
//     password reset or sign-in link must not pass through a third host,
//     leave its secret in tracking logs, or be "used up" by a scanner that
//     follows tracked links. A link carries a secret when a key of its
//     query (or of a key=value fragment), compared case-insensitively, is
//     one of secretParams or ends with one of secretSuffixes.

// secretParams are query keys that mark a one-time secret.
var secretParams = []string{
	"token", "signature", "sig", "expires", "code", "otp", "reset",
	"secret", "password", "nonce", "auth",
}

// secretSuffixes are endings of query keys that mark one (access_token,
// resetToken, X-Amz-Signature, X-Amz-Expires …).
var secretSuffixes = []string{"token", "signature", "secret", "expires"}

// secretLink reports whether the decoded URL dest carries a one-time secret.
func secretLink(dest string) bool {
	rest, fragment, _ := strings.Cut(dest, "#")
	_, query, _ := strings.Cut(rest, "?")
	return secretKeys(query) || (strings.Contains(fragment, "=") && secretKeys(fragment))
}

func secretKeys(query string) bool {
	for _, pair := range strings.FieldsFunc(query, func(r rune) bool { return r == '&' || r == ';' }) {
		key, _, _ := strings.Cut(pair, "=")
		if k, err := url.QueryUnescape(key); err == nil {
			key = k
		}
		key = strings.ToLower(strings.TrimSpace(key))
		if key == "" {
			continue
		}
		if slices.Contains(secretParams, key) {
			return true
		}
		for _, s := range secretSuffixes {
			if strings.HasSuffix(key, s) {
				return true
			}
		}
	}
	return false
}

// listUnsubscribeURLs returns the http(s) URLs of a List-Unsubscribe field
// value: the contents of its <…> elements, with folding white space removed
// (RFC 2369 section 2).
func listUnsubscribeURLs(value string) []string {
	var out []string
	for {
		i := strings.IndexByte(value, '<')
		if i < 0 {
			return out
		}
		j := strings.IndexByte(value[i:], '>')
		if j < 0 {
			return out
		}
		u := strings.Map(func(r rune) rune {
			if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
				return -1
			}
			return r
		}, value[i+1:i+j])
		if isHTTP(u) {
			out = append(out, u)
		}
		value = value[i+j+1:]
	}
}

// textResult is what rewriteText did to one text/plain body.
type textResult struct {
	out   []byte
	links []string
}

// rewriteText replaces every bare http(s) URL of a plain-text body by its
// click URL, numbering links from first. A URL starts with http:// or
// https:// (any case) not preceded by a letter or digit, and runs to white
// space, a control character or one of <>"`; trailing punctuation that
// usually ends a sentence (.,;:!?') is left out, and so is a closing
// bracket that opens nowhere in the URL. Untracked links (see trackable)
// are left as they are.
func rewriteText(src []byte, opts *Options, first int) textResult {
	r := textResult{out: make([]byte, 0, len(src)+len(src)/4)}
	pos := 0
	for pos < len(src) {
		start := nextURL(src, pos)
		if start < 0 {
			break
		}
		end := urlEnd(src, start)
		dest := string(src[start:end])
		r.out = append(r.out, src[pos:start]...)
		if isHTTP(dest) && trackable(dest, opts, false) {
			r.out = append(r.out, opts.ClickURL(first+len(r.links), dest)...)
			r.links = append(r.links, dest)
		} else {
			r.out = append(r.out, dest...)
		}
		pos = end
	}
	r.out = append(r.out, src[pos:]...)
	return r
}

// nextURL returns the offset of the next URL start at or after pos, or -1.
func nextURL(b []byte, pos int) int {
	for pos < len(b) {
		i := bytes.IndexAny(b[pos:], "hH")
		if i < 0 {
			return -1
		}
		i += pos
		rest := b[i:]
		if (hasPrefixFold(rest, "http://") || hasPrefixFold(rest, "https://")) && (i == 0 || !isAlnum(b[i-1])) {
			return i
		}
		pos = i + 1
	}
	return -1
}

// urlEnd returns the end of the URL that starts at start.
func urlEnd(b []byte, start int) int {
	end := start
	for end < len(b) {
		c := b[end]
		if c <= ' ' || c == 0x7f || c == '<' || c == '>' || c == '"' || c == '`' {
			break
		}
		end++
	}
	for end > start {
		c := b[end-1]
		switch {
		case strings.IndexByte(".,;:!?'", c) >= 0:
			end--
			continue
		case c == ')' && unbalanced(b[start:end], '(', ')'),
			c == ']' && unbalanced(b[start:end], '[', ']'),
			c == '}' && unbalanced(b[start:end], '{', '}'):
			end--
			continue
		}
		break
	}
	return end
}

// unbalanced reports whether s closes more brackets than it opens.
func unbalanced(s []byte, open, close byte) bool {
	return bytes.Count(s, []byte{close}) > bytes.Count(s, []byte{open})
}

func hasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && asciiEqualFold(b[:len(prefix)], prefix)
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}
