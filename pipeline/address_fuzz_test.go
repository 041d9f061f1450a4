package pipeline

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParseAddress holds ParseAddress, which sees every MAIL FROM, RCPT TO
// and API recipient before anything is stored, to what its callers rely on:
// an accepted address is a bare mailbox that can go into a header or an SMTP
// command as is (no CR, LF, angle brackets; an @), it comes back unchanged,
// accepting is stable, and every rejection is an ErrBadAddress, so smtpd
// answers 553 5.1.3 and the API 400 invalid_address.
func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{
		"user@example.com",
		"user+tag@sub.example.co.uk",
		"a@b",
		`"quoted local"@example.com`,
		`"a\"b"@example.com`,
		"user@[127.0.0.1]",
		"üser@exämple.com",
		"",
		"user",
		"user@",
		"@example.com",
		"a@b@c",
		"user@example.com ",
		"Name <user@example.com>",
		"<user@example.com>",
		"user@example.com (comment)",
		"user@example.com\r\nRCPT TO:<evil@example.com>",
		"user@exa\nmple.com",
		"user@example.com\r",
		"=?utf-8?q?x?=@example.com",
		"a@b,c@d",
		"user@example.com\x00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := ParseAddress(in)
		if err != nil {
			if !errors.Is(err, ErrBadAddress) {
				t.Fatalf("ParseAddress(%q): error %v (%T) is not an ErrBadAddress", in, err, err)
			}
			if got != "" {
				t.Fatalf("ParseAddress(%q) rejected but returned %q", in, got)
			}
			return
		}
		if got != in {
			t.Fatalf("ParseAddress(%q) = %q, want the input unchanged", in, got)
		}
		if strings.ContainsAny(got, "\r\n<>") {
			t.Fatalf("ParseAddress accepted %q, which has CR, LF or an angle bracket", got)
		}
		if !strings.Contains(got, "@") {
			t.Fatalf("ParseAddress accepted %q, which has no @", got)
		}
		again, err := ParseAddress(got)
		if err != nil || again != got {
			t.Fatalf("ParseAddress(%q) accepted once, then = %q, %v", got, again, err)
		}
	})
}
