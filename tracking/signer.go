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

// Signer makes and checks the ids of tracking links, unsubscribe links and
// feedback headers with an HMAC-SHA256 server secret. It signs with the
// current secret and accepts the MACs of older ones too, so that rotating
// the secret (tracking.secret: "new,old") breaks no link already sent. It
// is safe for concurrent use.
type Signer struct {
	secrets [][]byte // the current first
}

// NewSigner returns a Signer that signs with secret and also accepts the
// MACs of older. The secrets are copied.
func NewSigner(secret []byte, older ...[]byte) *Signer {
	s := &Signer{}
	for _, k := range append([][]byte{secret}, older...) {
		s.secrets = append(s.secrets, append([]byte(nil), k...))
	}
	return s
}

// ClickID returns the id of link index (≥ 0) of email emailID, in the form
// "<emailID>.<index>.<mac>": the index in decimal and the first 16 bytes of
// the MAC in unpadded base64url. With email ids of the form "em_" + base32
// the id only holds letters, digits, '_', '-' and '.', so it is safe in a
// URL path.
func (s *Signer) ClickID(emailID string, index int) string {
	idx := strconv.Itoa(index)
	return emailID + "." + idx + "." + macEncoding.EncodeToString(s.sum("click v1", emailID, idx))
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
	if !s.valid(mac, "click v1", emailID, idx) {
		return "", 0, false
	}
	index, err = strconv.Atoi(idx)
	if err != nil {
		return "", 0, false
	}
	return emailID, index, true
}

// sum returns the truncated MAC of parts (which hold no NUL) for purpose,
// with the current secret. The message is prefixed with a purpose label so
// that MACs made with the same secret for one use cannot be replayed for
// another.
func (s *Signer) sum(purpose string, parts ...string) []byte {
	return macWith(s.secrets[0], purpose, parts)
}

// valid reports whether mac is the MAC of parts for purpose with one of
// the secrets.
func (s *Signer) valid(mac []byte, purpose string, parts ...string) bool {
	for _, k := range s.secrets {
		if hmac.Equal(mac, macWith(k, purpose, parts)) {
			return true
		}
	}
	return false
}

func macWith(secret []byte, purpose string, parts []string) []byte {
	h := hmac.New(sha256.New, secret)
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
