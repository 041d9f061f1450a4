package smtpd

import (
	"regexp"
	"strings"
	"testing"
)

// TestAddresses (S14): what MAIL FROM and RCPT TO accept, as go-smtp hands
// the address over and as pigeonpost checks it. Without the SMTPUTF8
// parameter a non-ASCII address is 550 5.6.7 at MAIL and 553 5.6.7 at RCPT
// (RFC 6531 §3.5); with it, it is accepted (and bounced 5.6.7 at delivery
// when the next hop lacks SMTPUTF8: cmd/pigeonpost). Over-long, malformed
// and quoted-with-space addresses are 553 5.1.3, an address literal 550
// 5.1.2, a bare <Postmaster> 553 5.1.3 (pigeonpost relays; it has no
// local mailbox). A source route is dropped, as RFC 5321 §4.1.1.3 allows.
func TestAddresses(t *testing.T) {
	s := startServer(t)
	local65 := strings.Repeat("l", 65)
	long255 := strings.Repeat("d", 64) + "@" + strings.Repeat("e", 60) + "." + strings.Repeat("f", 60) + "." + strings.Repeat("g", 60) + ".example.test"
	if len(long255) < 255 {
		t.Fatalf("address of %d octets", len(long255))
	}
	type step struct{ cmd, want string }
	for name, steps := range map[string][]step{
		"MAIL": {
			{"MAIL FROM:<ü@acme.test>", `^550 5\.6\.7 `},
			{"MAIL FROM:<" + local65 + "@acme.test>", `^553 5\.1\.3 .*limit is 64`},
			{"MAIL FROM:<a\x01b@acme.test>", `^553 5\.1\.3 `},
			{"MAIL FROM:<a\x00b@acme.test>", `^553 5\.1\.3 `},
			{"MAIL FROM:<ü@acme.test> SMTPUTF8", `^250 `},
			{"RSET", `^250 `},
		},
		"RCPT without SMTPUTF8": {
			{"MAIL FROM:<" + testFrom + ">", `^250 `},
			{"RCPT TO:<ü@例え.jp>", `^553 5\.6\.7 `},
			{"RCPT TO:<user@exämple.test>", `^553 5\.6\.7 `},
			{"RCPT TO:<a@b@c>", `^553 5\.1\.3 `},
			{"RCPT TO:<a..b@example.test>", `^553 5\.1\.3 `},
			{`RCPT TO:<"a b"@example.test>`, `^553 5\.1\.3 `},
			{`RCPT TO:<"a\"b"@example.test>`, `^553 5\.1\.3 `},
			{"RCPT TO:<" + local65 + "@example.test>", `^553 5\.1\.3 .*limit is 64`},
			{"RCPT TO:<" + long255 + ">", `^553 5\.1\.3 .*limit is 254`},
			{"RCPT TO:<a\x01b@example.test>", `^553 5\.1\.3 `},
			{"RCPT TO:<a\x00b@example.test>", `^553 5\.1\.3 `},
			{"RCPT TO:<a@example.test\x7f>", `^553 5\.1\.3 `},
			{"RCPT TO:<a@[127.0.0.1]>", `^550 5\.1\.2 `},
			{"RCPT TO:<@route.test:a@example.test>", `^250 .*<a@example\.test>`},
			{`RCPT TO:<"ab"@example.test>`, `^250 .*<ab@example\.test>`},
			// go-smtp ≥ 0.26 hands over a bare <Postmaster> (RFC 5321
			// §4.1.1.3, the local postmaster); a relay has none of its own.
			{"RCPT TO:<Postmaster>", `^553 5\.1\.3 .*"Postmaster"`},
			{"RSET", `^250 `},
		},
		"RCPT with SMTPUTF8": {
			{"MAIL FROM:<" + testFrom + "> SMTPUTF8", `^250 `},
			{"RCPT TO:<ü@例え.jp>", `^250 `},
			{"RCPT TO:<" + local65 + "@example.test>", `^553 5\.1\.3 `},
			{"RSET", `^250 `},
			// RSET ends the SMTPUTF8 transaction.
			{"MAIL FROM:<" + testFrom + ">", `^250 `},
			{"RCPT TO:<ü@例え.jp>", `^553 5\.6\.7 `},
		},
	} {
		t.Run(name, func(t *testing.T) {
			rs := s.raw(t)
			for _, st := range steps {
				rs.write(st.cmd + "\r\n")
				line, err := rs.reply()
				if err != nil || !regexp.MustCompile(st.want).MatchString(line) {
					t.Errorf("%.60q: reply %q, %v; want %s", st.cmd, line, err, st.want)
				}
			}
		})
	}
	s.pipe.checkBreaches(t)
}
