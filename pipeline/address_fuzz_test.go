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
		strings.Repeat("l", 65) + "@example.com",
		strings.Repeat("l", 64) + "@" + strings.Repeat("d", 190) + ".com",
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
		if len(got) > MaxAddressOctets || strings.LastIndexByte(got, '@') > MaxLocalPartOctets {
			t.Fatalf("ParseAddress accepted %q, over the limits of RFC 5321 §4.5.3.1", got)
		}
		again, err := ParseAddress(got)
		if err != nil || again != got {
			t.Fatalf("ParseAddress(%q) accepted once, then = %q, %v", got, again, err)
		}
	})
}

// TestAddressTable (S14): the rules every path shares (SMTP MAIL and RCPT,
// REST recipients): RFC 5321's limits, malformed and quoted-with-space
// local parts, and, for recipients, address literals and localhost unless
// delivery.allow_private_destinations.
func TestAddressTable(t *testing.T) {
	local64 := strings.Repeat("l", 64)
	addr254 := local64 + "@" + strings.Repeat("d", 184) + ".test" // 254 octets
	for addr, want := range map[string]*Error{
		local64 + "@example.test":                 nil,
		local64 + "l@example.test":                ErrBadAddress,
		addr254:                                   nil,
		addr254[:64] + "x" + addr254[64:]:         ErrBadAddress, // 255 octets, its local part 65
		"l@" + strings.Repeat("d", 248) + ".test": ErrBadAddress, // 255 octets
		"a@b@c":                    ErrBadAddress,
		"a..b@x.test":              ErrBadAddress,
		"a b@example.test":         ErrBadAddress, // "a b"@example.test as go-smtp hands it over
		`"a b"@example.test`:       ErrBadAddress,
		"a\x00b@x.test":            ErrBadAddress,
		"a\x1bb@x.test":            ErrBadAddress,
		"ü@例え.jp":                  nil, // SMTPUTF8 is smtpd's to check
		"a@[127.0.0.1]":            ErrBadDestination,
		"a@[IPv6:::1]":             ErrBadAddress, // net/mail reads no IPv6 literal
		"a@localhost":              ErrBadDestination,
		"a@mail.localhost":         ErrBadDestination,
		"a@localhost.example.test": nil,
	} {
		err := (&Service{}).CheckRecipient(addr)
		if want == nil && err != nil || want != nil && !errors.Is(err, want) {
			t.Errorf("CheckRecipient(%.40q…): %v, want %v", addr, err, want)
		}
		allowed := (&Service{opt: Options{AllowPrivateDestinations: true}}).CheckRecipient(addr)
		if want == ErrBadDestination && allowed != nil {
			t.Errorf("CheckRecipient(%q) with private destinations allowed: %v", addr, allowed)
		}
	}
	if err := (&Service{}).CheckRecipient(strings.Repeat("l", 65) + "@x.test"); !strings.Contains(AsError(err).Message, "limit is 64") {
		t.Errorf("the refusal does not name the limit: %v", err)
	}
}
