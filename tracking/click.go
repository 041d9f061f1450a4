package tracking

import (
	"encoding/base64"
	"strconv"
	"strings"
)

// A click id made by ClickID names its link by index, and the click
// endpoint reads the destination from the email's record, which expires
// with retention.records: a link in old mail would stop working. A sealed
// click id carries its destination (and its account) under the MAC
// instead, so that it redirects for as long as its secret is accepted,
// whatever became of the record; the MAC still keeps it from sending
// anyone anywhere the mail did not.

// maxSealedClickIDLen bounds the sealed ids ParseClick looks at: a
// destination of up to about 6 KB.
const maxSealedClickIDLen = 8192

// destEncoding encodes a sealed destination: URL-safe, without '.'.
var destEncoding = base64.RawURLEncoding.Strict()

// Click is what a click id names.
type Click struct {
	EmailID string
	Index   int
	// AccountID and Dest are carried by a sealed id; empty in an id of the
	// older form, whose destination is on the email's record.
	AccountID string
	Dest      string
}

// SealedClickID returns the id of link index (≥ 0) of an email, with its
// account and its destination sealed in:
// "<emailID>.<index>.<accountID>.<base64url(dest)>.<mac>". Ids hold no '.'.
func (s *Signer) SealedClickID(accountID, emailID string, index int, dest string) string {
	return s.sealedClickID(purposeClick, accountID, emailID, index, dest)
}

// PreviewClickID is SealedClickID for the copy a preview shows (POST
// /v1/emails/preview): an id of the same form, made for another purpose,
// which ParseClick refuses. A preview stores nothing, so its links must
// not work: they would redirect as links of expired mail do, minted
// without a send, and be counted as clicks of the account.
func (s *Signer) PreviewClickID(accountID, emailID string, index int, dest string) string {
	return s.sealedClickID(purposePreviewClick, accountID, emailID, index, dest)
}

// The purposes of sealed click ids: ParseClick accepts only the first.
const (
	purposeClick        = "click v2"
	purposePreviewClick = "click preview"
)

func (s *Signer) sealedClickID(purpose, accountID, emailID string, index int, dest string) string {
	var num [20]byte
	idx := strconv.AppendInt(num[:0], int64(index), 10)
	mac := s.sum(purpose, emailID, string(idx), accountID, dest)
	// One buffer for the id: it is minted for every tracked link.
	b := make([]byte, 0, len(emailID)+len(idx)+len(accountID)+destEncoding.EncodedLen(len(dest))+macEncoding.EncodedLen(macLen)+4)
	b = append(append(b, emailID...), '.')
	b = append(append(b, idx...), '.')
	b = append(append(b, accountID...), '.')
	b = append(destEncoding.AppendEncode(b, []byte(dest)), '.')
	return string(macEncoding.AppendEncode(b, mac[:]))
}

// ParseClick checks a click id of either form, sealed or not; ok is false
// if it was not made by this server with one of its secrets.
func (s *Signer) ParseClick(id string) (c Click, ok bool) {
	if strings.Count(id, ".") != 4 {
		c.EmailID, c.Index, ok = s.ParseClickID(id)
		return c, ok
	}
	if len(id) > maxSealedClickIDLen {
		return Click{}, false
	}
	parts := strings.Split(id, ".")
	emailID, idx, accountID, d, macStr := parts[0], parts[1], parts[2], parts[3], parts[4]
	if emailID == "" || accountID == "" || !canonicalIndex(idx) || len(macStr) != macEncoding.EncodedLen(macLen) {
		return Click{}, false
	}
	// The decoder skips CR and LF: an id carrying them is not one we made.
	if strings.ContainsAny(d, "\r\n") {
		return Click{}, false
	}
	dest, err := destEncoding.DecodeString(d)
	if err != nil {
		return Click{}, false
	}
	mac, err := macEncoding.DecodeString(macStr)
	if err != nil || !s.valid(mac, purposeClick, emailID, idx, accountID, string(dest)) {
		return Click{}, false
	}
	index, _ := strconv.Atoi(idx)
	return Click{EmailID: emailID, Index: index, AccountID: accountID, Dest: string(dest)}, true
}
