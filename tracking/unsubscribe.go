package tracking

import "strings"

// maxUnsubscribeIDLen bounds the ids ParseUnsubscribeID looks at; real ids
// are about 110 bytes long.
const maxUnsubscribeIDLen = 256

// UnsubscribeID returns the id of an email's unsubscribe link,
// "<accountID>.<contactID>.<emailID>.<mac>". It names the contact itself,
// not only the email, so that the link keeps working after the email's
// record has expired, for as long as the secret does; the MAC makes it
// unguessable. The ids must hold no '.' (pigeonpost's ids are "xx_" and
// base32), so the id is safe in a URL path.
func (s *Signer) UnsubscribeID(accountID, contactID, emailID string) string {
	return accountID + "." + contactID + "." + emailID + "." +
		encodeMAC(s.sum("unsubscribe v1", accountID, contactID, emailID))
}

// ParseUnsubscribeID checks id and returns what UnsubscribeID made it of;
// ok is false if it was not made by UnsubscribeID with this secret.
func (s *Signer) ParseUnsubscribeID(id string) (accountID, contactID, emailID string, ok bool) {
	if len(id) > maxUnsubscribeIDLen {
		return "", "", "", false
	}
	parts := strings.Split(id, ".")
	if len(parts) != 4 || parts[0] == "" || parts[1] == "" || parts[2] == "" ||
		len(parts[3]) != macEncoding.EncodedLen(macLen) {
		return "", "", "", false
	}
	mac, err := macEncoding.DecodeString(parts[3])
	if err != nil || !s.valid(mac, "unsubscribe v1", parts[0], parts[1], parts[2]) {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}
