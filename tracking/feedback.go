package tracking

import "strings"

// FeedbackHeader is the header delivery adds to every email, carrying its
// FeedbackID. The reports that mail systems send back about it — a
// feedback loop's complaint (ARF), a late bounce (DSN) — return the
// original's header, so the report names its email; the MAC keeps anyone
// from naming another.
const FeedbackHeader = "X-Pigeonpost-Id"

// maxFeedbackIDLen bounds the ids ParseFeedbackID looks at; real ids are
// about 55 bytes long.
const maxFeedbackIDLen = 128

// FeedbackID returns "<emailID>.<mac>", the value of an email's
// FeedbackHeader. Email ids hold no '.'.
func (s *Signer) FeedbackID(emailID string) string {
	return emailID + "." + encodeMAC(s.sum("feedback v1", emailID))
}

// AppendFeedbackField appends to dst the header field that delivery puts
// before the email emailID: "X-Pigeonpost-Id: <FeedbackID>" and CRLF.
func (s *Signer) AppendFeedbackField(dst []byte, emailID string) []byte {
	dst = append(dst, FeedbackHeader+": "...)
	dst = append(dst, s.FeedbackID(emailID)...)
	return append(dst, "\r\n"...)
}

// ParseFeedbackID checks id and returns the email id it was made for; ok
// is false if it was not made by FeedbackID with this secret.
func (s *Signer) ParseFeedbackID(id string) (emailID string, ok bool) {
	id = strings.TrimSpace(id)
	if len(id) > maxFeedbackIDLen {
		return "", false
	}
	emailID, macStr, found := strings.Cut(id, ".")
	if !found || emailID == "" || len(macStr) != macEncoding.EncodedLen(macLen) {
		return "", false
	}
	mac, err := macEncoding.DecodeString(macStr)
	if err != nil || !s.valid(mac, "feedback v1", emailID) {
		return "", false
	}
	return emailID, true
}
