// Package testkit starts the real things integration tests talk to, on
// loopback only: redis-server, a recording SMTP sink and a DNS server.
//
// Every server listens on 127.0.0.1 (or a unix socket in t.TempDir()), uses
// a port chosen by the kernel and is stopped by t.Cleanup.
//
// The sink and the DNS server themselves live in the leaves
// internal/testkit/smtpsink and internal/testkit/dnsserver, which do not
// import "testing": e2e/driver, cmd/smtpload and bench/dnsd run the same
// servers. Certificates come from internal/certs.
//
// It also holds the clients tests drive the gateway with, so that smtpd's,
// api's and cmd/pigeonpost's tests share one copy: the SMTP helpers in
// smtp.go (DialSMTP, SendMail, WantSMTPError) and the REST client in
// internal/testkit/resttest.
package testkit
