// Package webhooks delivers account events to the webhook endpoints that
// accounts register: it reads the global event stream through a consumer
// group, builds the documented JSON bodies, signs them and POSTs them with
// retries kept in Redis, away from the paths that record events (the
// tracking endpoints and mail delivery never wait on a webhook).
//
// # Signature
//
// Every request carries
//
//	X-Pigeonpost-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>
//	X-Pigeonpost-Webhook-Id: <delivery id, the same on every attempt>
//	X-Pigeonpost-Event: <event name>
//
// where secret is the endpoint's signing secret (whsec_…, shown once when the
// endpoint is created), used as is as the HMAC key. A receiver recomputes the
// HMAC over the raw bytes it received, compares in constant time, and
// rejects timestamps more than DefaultTolerance (5 minutes) from its clock:
// a captured request cannot be replayed later, and a replay within the
// window carries a webhook id the receiver has already seen. Each attempt
// is signed afresh with its own timestamp. Verify does all of this.
//
// Delivery is at least once: a receiver must treat a repeated webhook id as
// a duplicate.
package webhooks

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Header names of webhook requests.
const (
	SignatureHeader = "X-Pigeonpost-Signature"
	IDHeader        = "X-Pigeonpost-Webhook-Id"
	EventHeader     = "X-Pigeonpost-Event"
)

// DefaultTolerance is the replay window receivers should allow between the
// signed timestamp and their clock.
const DefaultTolerance = 5 * time.Minute

// NewSecret returns a new endpoint signing secret: "whsec_" and 32 random
// bytes in base64url.
func NewSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return "whsec_" + base64.RawURLEncoding.EncodeToString(b[:])
}

// Sign returns the signature header value for body sent at t.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, []byte(secret))
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// Errors of Verify.
var (
	ErrBadSignatureHeader = errors.New("malformed signature header")
	ErrTimestamp          = errors.New("signature timestamp outside the tolerance")
	ErrSignature          = errors.New("no signature matches")
)

// Verify checks the signature header of a request whose raw body is body,
// received at now: the timestamp must be within tolerance of now and one of
// the v1 signatures (there may be several) must match.
func Verify(secret, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return ErrBadSignatureHeader
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			sig, err := hex.DecodeString(v)
			if err != nil {
				return ErrBadSignatureHeader
			}
			sigs = append(sigs, sig)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrBadSignatureHeader
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return ErrTimestamp
	}
	want := mac(secret, ts, body)
	for _, sig := range sigs {
		if hmac.Equal(sig, want) {
			return nil
		}
	}
	return ErrSignature
}
