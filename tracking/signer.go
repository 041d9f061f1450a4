package tracking

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"hash"
	"strconv"
	"strings"
	"sync"
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
	secrets [][]byte     // the current first
	macs    []*sync.Pool // of *macState, one pool per secret
}

// macState is an HMAC keyed with one secret and the buffers of one MAC:
// pooled, since keying an HMAC costs two SHA-256 blocks and a few
// allocations, and a message with 20 tracked links needs 20 MACs.
type macState struct {
	h   hash.Hash
	msg []byte
	sum []byte
}

// NewSigner returns a Signer that signs with secret and also accepts the
// MACs of older. The secrets are copied.
func NewSigner(secret []byte, older ...[]byte) *Signer {
	s := &Signer{}
	for _, k := range append([][]byte{secret}, older...) {
		k = append([]byte(nil), k...)
		s.secrets = append(s.secrets, k)
		s.macs = append(s.macs, &sync.Pool{New: func() any { return &macState{h: hmac.New(sha256.New, k)} }})
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
	return emailID + "." + idx + "." + encodeMAC(s.sum("click v1", emailID, idx))
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
func (s *Signer) sum(purpose string, parts ...string) [macLen]byte {
	return s.macWith(0, purpose, parts)
}

// valid reports whether mac is the MAC of parts for purpose with one of
// the secrets.
func (s *Signer) valid(mac []byte, purpose string, parts ...string) bool {
	for k := range s.secrets {
		if m := s.macWith(k, purpose, parts); hmac.Equal(mac, m[:]) {
			return true
		}
	}
	return false
}

// macWith is the MAC with secret k of "pigeonpost <purpose>\x00" followed
// by parts separated by NUL bytes, truncated to macLen.
func (s *Signer) macWith(k int, purpose string, parts []string) (mac [macLen]byte) {
	st := s.macs[k].Get().(*macState)
	st.msg = append(append(append(st.msg[:0], "pigeonpost "...), purpose...), 0)
	for i, p := range parts {
		if i > 0 {
			st.msg = append(st.msg, 0)
		}
		st.msg = append(st.msg, p...)
	}
	st.h.Reset()
	st.h.Write(st.msg)
	st.sum = st.h.Sum(st.sum[:0])
	copy(mac[:], st.sum)
	s.macs[k].Put(st)
	return mac
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

// encodeMAC is mac as an id carries it.
func encodeMAC(mac [macLen]byte) string { return macEncoding.EncodeToString(mac[:]) }
