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
//     follows tracked links.
//
// A link carries a secret when a key=value pair of its query (or of a
// fragment holding '=') has a key that, unescaped, lower-cased and without
// '-' and '_' (X-Amz-Signature → xamzsignature, session_id → sessionid):
//
//   - is one of secretNames or ends with one of secretSuffixes, whatever
//     the value (reset and access tokens, signed URLs, OTPs);
//   - or ends with one of maybeSecretSuffixes and its value looksSecret.
//     These names also carry promo codes and flags (code=SUMMER20,
//     auth=1) that senders want tracked, so only a long random-looking
//     value (an OAuth code, a WordPress reset key, a session id) counts.

// secretNames are keys that mark a one-time secret ("sig": Azure SAS and
// other signed URLs).
var secretNames = []string{"sig", "otp", "nonce"}

// secretSuffixes are endings of keys that mark one (token, access_token,
// resetToken, X-Amz-Signature, X-Goog-Signature, client_secret,
// X-Amz-Expires, the expiry of a signed URL).
var secretSuffixes = []string{"token", "signature", "secret", "password", "expires"}

// maybeSecretSuffixes are endings of keys that mark a secret only with a
// value that looksSecret (code, auth_code, key, auth, reset, session_id,
// PHPSESSID).
var maybeSecretSuffixes = []string{"code", "key", "auth", "reset", "session", "sessionid", "sid"}

// secretLink reports whether the decoded URL dest carries a one-time secret.
func secretLink(dest string) bool {
	rest, fragment, _ := strings.Cut(dest, "#")
	_, query, _ := strings.Cut(rest, "?")
	return secretKeys(query) || (strings.Contains(fragment, "=") && secretKeys(fragment))
}

var keySeparators = strings.NewReplacer("-", "", "_", "")

func secretKeys(query string) bool {
	for _, pair := range strings.FieldsFunc(query, func(r rune) bool { return r == '&' || r == ';' }) {
		key, value, _ := strings.Cut(pair, "=")
		if k, err := url.QueryUnescape(key); err == nil {
			key = k
		}
		key = keySeparators.Replace(strings.ToLower(strings.TrimSpace(key)))
		if key == "" {
			continue
		}
		if slices.Contains(secretNames, key) || hasAnySuffix(key, secretSuffixes) ||
			hasAnySuffix(key, maybeSecretSuffixes) && looksSecret(value) {
			return true
		}
	}
	return false
}

func hasAnySuffix(s string, suffixes []string) bool {
	return slices.ContainsFunc(suffixes, func(suffix string) bool { return strings.HasSuffix(s, suffix) })
}

// looksSecret reports whether the query value v (escaped or not) looks like
// a random secret rather than a code or word meant for people.
func looksSecret(v string) bool {
	if u, err := url.PathUnescape(v); err == nil { // keeps the '+' of base64
		v = u
	}
	// Codes that people read or type (SUMMER20, FREESHIP, a 6-digit code,
	// an order number) are shorter. 16 hex or base64 characters hold 64
	// to 96 bits, the least a bearer secret is made of: a 128-bit one is
	// 22 base64 or 32 hex characters.
	if len(v) < 16 {
		return false
	}
	var upper, lower, digit bool
	for _, c := range []byte(v) {
		switch {
		case 'A' <= c && c <= 'Z':
			upper = true
		case 'a' <= c && c <= 'z':
			lower = true
		case '0' <= c && c <= '9':
			digit = true
		case strings.IndexByte("-._~+/=", c) < 0:
			// Secrets are hex, base32, base64(url), UUIDs or JWTs; a
			// value with a space, '@' or ':' is text, an address or a URL.
			return false
		}
	}
	// A random string that long mixes at least two of upper case, lower
	// case and digits (a 16-character base62 one fails with odds of 2 in a
	// million, a 32-character hex one 1 in 3 million); a phrase in one
	// case (WELCOMEBACKFRIENDS) or a number (an order number, a
	// timestamp) does not. Shannon entropy would not separate them
	// better: readable codes score like random ones.
	return upper && lower || digit && (upper || lower)
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

// rewriteText replaces every bare http(s) URL of a plain-text body by its
// click URL, numbering links from first. A URL starts with http:// or
// https:// (any case) not preceded by a letter or digit, and runs to white
// space, a control character or one of <>"`; trailing punctuation that
// usually ends a sentence (.,;:!?') is left out, and so is a closing
// bracket that opens nowhere in the URL. Untracked links (see untracked)
// are left as they are.
func rewriteText(src []byte, opts *Options, first int) partResult {
	r := partResult{out: make([]byte, 0, len(src)+len(src)/4)}
	pos := 0
	for pos < len(src) {
		start := nextURL(src, pos)
		if start < 0 {
			break
		}
		end := urlEnd(src, start)
		dest := string(src[start:end])
		r.out = append(r.out, src[pos:start]...)
		reason := untracked(dest, opts, false)
		if isHTTP(dest) {
			r.note(dest, first, reason)
		}
		if reason == "" {
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
