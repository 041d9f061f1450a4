package testkit

import (
	"crypto/tls"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/certs"
)

// SelfSignedCert returns a self-signed certificate valid for 24 hours; see
// certs.SelfSigned.
func SelfSignedCert(hosts ...string) (tls.Certificate, error) {
	return certs.SelfSigned(24*time.Hour, hosts...)
}
