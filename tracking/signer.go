package tracking

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
)

// macLen is the number of HMAC-SHA256 bytes a click id carries.
const macLen = 16

// maxClickIDLen bounds the ids ParseClickID looks at; real ids are about 60
// bytes long.
const maxClickIDLen = 256

// macEncoding encodes the MAC. Strict rejects non-zero padding bits, so that
// each MAC has exactly one spelling and no altered id verifies.
var macEncoding = base64.RawURLEncoding.Strict()

// Signer makes and checks click-tracking ids with an HMAC-SHA256 server secret.
// It is safe for concurrent use.
type Signer struct {
	secret []byte
}

// NewSigner returns a Signer for secret. The secret is copied.
func NewSigner(secret []byte) *Signer {
	return &Signer{secret: append([]byte(nil), secret...)}
}

// ClickID returns the id of link index (≥ 0) of email emailID, in the form
// "<emailID>.<index>.<mac>": the index in decimal and the first 16 bytes of
// the MAC in unpadded base64url. With email ids of the form "em_" + base32
// the id only holds letters, digits, '_', '-' and '.', so it is safe in a
// URL path.
func (s *Signer) ClickID(emailID string, index int) string {
	idx := strconv.Itoa(index)
	return emailID + "." + idx + "." + macEncoding.EncodeToString(s.mac(emailID, idx))
}

// ParseClickID checks id and returns the email id and link index it was
// made for. ok is false if id was not made by ClickID with this secret.
func (s *Signer) ParseClickID(id string) (emailID string, index int, ok bool) {
	if len(id) > maxClickIDLen {
		return "", 0, false
	}
	rest, macStr, found := cutLast(id, ".")
	if !found {
		return "", 0, false
	}
	emailID, idx, found := cutLast(rest, ".")
	if !found || emailID == "" || !canonicalIndex(idx) {
		return "", 0, false
	}
	// The length check also rules out CR and LF, which the decoder skips.
	if len(macStr) != macEncoding.EncodedLen(macLen) {
		return "", 0, false
	}
	mac, err := macEncoding.DecodeString(macStr)
	if err != nil || len(mac) != macLen {
		return "", 0, false
	}
	if !hmac.Equal(mac, s.mac(emailID, idx)) {
		return "", 0, false
	}
	index, err = strconv.Atoi(idx)
	if err != nil {
		return "", 0, false
	}
	return emailID, index, true
}

// mac returns the truncated MAC of one click id; the index is last and all
// digits, so the encoding is unambiguous.
func (s *Signer) mac(emailID, idx string) []byte { return s.sum("click v1", emailID, idx) }

// sum returns the truncated MAC of parts (which hold no NUL) for purpose.
// The message is prefixed with a purpose label so that MACs made with the
// same secret for one use cannot be replayed for another.
func (s *Signer) sum(purpose string, parts ...string) []byte {
	h := hmac.New(sha256.New, s.secret)
	h.Write([]byte("pigeonpost " + purpose + "\x00"))
	for i, p := range parts {
		if i > 0 {
			h.Write([]byte{0})
		}
		h.Write([]byte(p))
	}
	return h.Sum(nil)[:macLen]
}

// canonicalIndex reports whether s is a non-negative decimal number as
// strconv.Itoa writes it: digits only, no leading zero, fits an int.
func canonicalIndex(s string) bool {
	if s == "" || len(s) > 1 && s[0] == '0' {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	_, err := strconv.Atoi(s)
	return err == nil
}

func cutLast(s, sep string) (before, after string, found bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}
