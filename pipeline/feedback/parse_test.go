package feedback

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
)

const pigeonpostID = "em_test1.Zm9vYmFyYmF6cXV1eDEyMzQ1Ng"

// fixture is what Parse must read from a file of testdata/: the report but
// its Original, of which some fields are checked, and the number of distinct
// field names, which catches a body read as header or a header cut short.
type fixture struct {
	file           string
	want           Report
	original       map[string]string
	originalFields int
}

var fixtures = []fixture{
	{
		file: "arf-yahoo.eml", // CRLF
		want: Report{
			Kind:         KindComplaint,
			FeedbackType: "abuse",
			UserAgent:    "Yahoo!-Mail-Feedback/2.0",
			Recipients:   []Recipient{{Address: "subscriber@yahoo.com"}},
		},
		original: map[string]string{
			"Message-Id":       "<20240514090210.em_test1@mail.example.com>",
			"X-Pigeonpost-Id":  pigeonpostID,
			"List-Unsubscribe": "<https://example.com/u/em_test1>",
			"Dkim-Signature": "v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; " +
				"s=pp1; t=1715677330; h=from:to:subject:date:message-id; " +
				"bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; " +
				"b=dGhpcyBpcyBub3QgYSByZWFsIHNpZ25hdHVyZSBidXQgaXQgbG9va3MgbGlrZSBvbmU=",
		},
		originalFields: 12,
	},
	{
		file: "arf-microsoft.eml", // original base64-encoded, no Original-Rcpt-To
		want: Report{
			Kind:         KindComplaint,
			FeedbackType: "abuse",
			UserAgent:    "Microsoft Junk Mail Reporting Program",
		},
		original: map[string]string{
			"X-Hmxmroriginalrecipient": "<reader@outlook.com>",
			"Message-Id":               "<20240514014001.em_test1@mail.example.com>",
			"X-Pigeonpost-Id":          pigeonpostID,
			"Received": "from mail.example.com ([203.0.113.10]) by SN1NAM02FT012.mail.protection.outlook.com " +
				"with Microsoft SMTPSVC(7.5.7601.17514); Mon, 13 May 2024 18:40:02 -0700",
		},
		originalFields: 14,
	},
	{
		file: "arf-headers-only.eml", // text/rfc822-headers, quoted-printable human part
		want: Report{
			Kind:         KindComplaint,
			FeedbackType: "abuse",
			UserAgent:    "ExampleNet-FBL/1.0",
			Recipients:   []Recipient{{Address: "member@example.net"}},
		},
		original: map[string]string{
			"Message-Id":      "<20240515065840.em_test1@mail.example.com>",
			"X-Pigeonpost-Id": pigeonpostID,
			"Subject":         "=?utf-8?q?Last_chance=3A_20=25_off?=",
		},
		originalFields: 10,
	},
	{
		file: "dsn-postfix.eml", // CRLF
		want: Report{
			Kind:      KindDelivery,
			UserAgent: "relay.example.com",
			Recipients: []Recipient{{
				Address:    "nobody@example.org",
				Action:     "failed",
				Status:     [3]int{5, 1, 1},
				Diagnostic: "550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown in virtual mailbox table",
			}},
		},
		original: map[string]string{
			"Message-Id":      "<20240514101200.em_test1@mail.example.com>",
			"X-Pigeonpost-Id": pigeonpostID,
			"Content-Type":    `multipart/alternative; boundary="pp-alt-7a1c"`,
		},
		originalFields: 10,
	},
	{
		file: "dsn-exim.eml", // LF only; Exim writes Status 5.0.0 whatever the reply
		want: Report{
			Kind:      KindDelivery,
			UserAgent: "mail.example.net",
			Recipients: []Recipient{{
				Address:    "alice@example.org",
				Action:     "failed",
				Status:     [3]int{5, 0, 0},
				Diagnostic: "550 5.1.1 <alice@example.org>: Recipient address rejected: User unknown",
			}},
		},
		original: map[string]string{
			"Return-Path":     "<bounce+em_test1@mail.example.com>",
			"Message-Id":      "<20240514093005.em_test1@mail.example.com>",
			"X-Pigeonpost-Id": pigeonpostID,
		},
		originalFields: 10,
	},
	{
		file: "dsn-delayed.eml", // Sendmail: a human part without header, RFC822 and DNS in capitals
		want: Report{
			Kind:      KindDelivery,
			UserAgent: "mail.example.net",
			Recipients: []Recipient{{
				Address: "slow@example.org",
				Action:  "delayed",
				Status:  [3]int{4, 4, 1},
			}},
		},
		original: map[string]string{
			"Message-Id":      "<20240514061000.em_test1@mail.example.com>",
			"X-Pigeonpost-Id": pigeonpostID,
		},
		originalFields: 10,
	},
	{
		file: "dsn-gmail.eml", // a multipart/related human part; a diagnostic folded over four lines
		want: Report{
			Kind:      KindDelivery,
			UserAgent: "googlemail.com",
			Recipients: []Recipient{{
				Address: "gone@example.org",
				Action:  "failed",
				Status:  [3]int{5, 1, 1},
				Diagnostic: "550-5.1.1 The account you tried to reach does not exist. Please check " +
					"550-5.1.1 the recipient's address for typos or 550-5.1.1 unnecessary spaces. " +
					"550 5.1.1 a1-20020a05600c000000b0041c0000000si1234567wmq.123 - gsmtp",
			}},
		},
		original: map[string]string{
			"Message-Id":      "<20240514101205.em_test1@mail.example.com>",
			"X-Pigeonpost-Id": pigeonpostID,
		},
		originalFields: 9,
	},
	{
		file: "dsn-exchange.eml", // two recipients, "smtp;" without a space, a three-part status 5.1.10
		want: Report{
			Kind:      KindDelivery,
			UserAgent: "AM0PR01MB1234.eurprd01.prod.exchangelabs.com",
			Recipients: []Recipient{{
				Address:    "jdoe@contoso.com",
				Action:     "failed",
				Status:     [3]int{5, 1, 10},
				Diagnostic: "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
			}, {
				Address:    "full@contoso.com",
				Action:     "failed",
				Status:     [3]int{5, 2, 2},
				Diagnostic: "554 5.2.2 mailbox full; STOREDRV.Deliver.Exception:QuotaExceededException.MapiExceptionShutoffQuotaExceeded",
			}},
		},
		original: map[string]string{
			"Message-Id":      "<20240514101201.em_test1@mail.example.com>",
			"X-Pigeonpost-Id": pigeonpostID,
			"Return-Path":     "bounce+em_test1@mail.example.com",
		},
		originalFields: 10,
	},
	{
		file: "dsn-forwarded.eml", // a Postfix bounce forwarded as an attachment
		want: Report{
			Kind:      KindDelivery,
			UserAgent: "relay.example.com",
			Recipients: []Recipient{{
				Address:    "closed@example.org",
				Action:     "failed",
				Status:     [3]int{5, 2, 1},
				Diagnostic: "550 5.2.1 <closed@example.org>: Mailbox disabled",
			}},
		},
		original: map[string]string{
			"Message-Id":      "<20240514124006.em_test1@mail.example.com>",
			"X-Pigeonpost-Id": pigeonpostID,
		},
		originalFields: 8,
	},
}

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkReport compares got with a fixture's expectations.
func checkReport(t *testing.T, got *Report, fx fixture) {
	t.Helper()
	rest := *got
	rest.Original = nil
	if !reflect.DeepEqual(rest, fx.want) {
		t.Errorf("report:\n got %+v\nwant %+v", rest, fx.want)
	}
	for name, want := range fx.original {
		if v := got.Original.Values(name); len(v) != 1 || v[0] != want {
			t.Errorf("Original[%s] = %q, want [%q]", name, v, want)
		}
	}
	if len(got.Original) != fx.originalFields {
		t.Errorf("Original has %d field names, want %d: %v", len(got.Original), fx.originalFields, got.Original)
	}
}

func TestParseFixtures(t *testing.T) {
	for _, fx := range fixtures {
		t.Run(fx.file, func(t *testing.T) {
			raw := readFixture(t, fx.file)
			lf := bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n"))
			crlf := bytes.ReplaceAll(lf, []byte("\n"), []byte("\r\n"))
			for name, r := range map[string]io.Reader{
				"as is":       bytes.NewReader(raw),
				"byte a read": iotest.OneByteReader(bytes.NewReader(raw)),
				"LF":          bytes.NewReader(lf),
				"CRLF":        bytes.NewReader(crlf),
			} {
				got, err := Parse(r)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				checkReport(t, got, fx)
			}
		})
	}
}

// The fixtures come with both line endings, as mail does.
func TestParseFixtureLineEndings(t *testing.T) {
	for file, wantCRLF := range map[string]bool{"arf-yahoo.eml": true, "dsn-postfix.eml": true, "dsn-exim.eml": false} {
		raw := readFixture(t, file)
		lines, crlf := bytes.Count(raw, []byte("\n")), bytes.Count(raw, []byte("\r\n"))
		if wantCRLF && crlf != lines || !wantCRLF && crlf != 0 {
			t.Errorf("%s: %d of %d lines end in CRLF", file, crlf, lines)
		}
	}
}

func TestParseNotReport(t *testing.T) {
	_, err := Parse(bytes.NewReader(readFixture(t, "not-report.eml")))
	if !errors.Is(err, ErrNotReport) {
		t.Fatalf("err = %v, want ErrNotReport", err)
	}
}

// part is one body part of a message built by multipart.
type part struct{ header, body string }

// multipart builds a message (LF endings) of the given type and parts, with
// a boundary that differs from that of a multipart nested in it.
func multipart(contentType string, parts ...part) string {
	size := 0
	for _, p := range parts {
		size += len(p.body)
	}
	boundary := fmt.Sprintf("b%d.%d", len(parts), size)
	var b strings.Builder
	fmt.Fprintf(&b, "From: MAILER-DAEMON@relay.example.com\nSubject: report\nMIME-Version: 1.0\nContent-Type: %s; boundary=%q\n\nPreamble.\n", contentType, boundary)
	for _, p := range parts {
		fmt.Fprintf(&b, "--%s\n%s\n\n%s\n", boundary, p.header, p.body)
	}
	fmt.Fprintf(&b, "--%s--\n", boundary)
	return b.String()
}

const originalHeader = "Message-ID: <m1@mail.example.com>\nX-Pigeonpost-Id: " + pigeonpostID + "\nSubject: hi\n"

var (
	humanPart    = part{"Content-Type: text/plain", "Your message could not be delivered."}
	originalPart = part{"Content-Type: text/rfc822-headers", originalHeader}
)

// dsn builds a delivery-status report with the given machine-readable fields.
func dsn(fields string) string {
	return multipart("multipart/report; report-type=delivery-status", humanPart,
		part{"Content-Type: message/delivery-status", fields}, originalPart)
}

// arf builds a feedback report with the given machine-readable fields.
func arf(fields string) string {
	return multipart("multipart/report; report-type=feedback-report", humanPart,
		part{"Content-Type: message/feedback-report", fields}, originalPart)
}

const postfixFields = "Reporting-MTA: dns; relay.example.com\n\nFinal-Recipient: rfc822; a@example.org\nAction: failed\nStatus: 5.1.1\n"

var postfixRecipient = Recipient{Address: "a@example.org", Action: "failed", Status: [3]int{5, 1, 1}}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name       string
		in         string
		want       Report // Original is checked only for X-Pigeonpost-Id
		noOriginal bool
	}{{
		name: "field names in any case, values in capitals, comments",
		in: dsn("reporting-mta: DNS; relay.example.com\n\nFINAL-RECIPIENT: RFC822; <A@Example.org>\n" +
			"action: Failed (permanent)\nSTATUS: 5.1.1 (bad destination mailbox)\ndiagnostic-code: SMTP; 550 no\n"),
		want: Report{Kind: KindDelivery, UserAgent: "relay.example.com", Recipients: []Recipient{
			{Address: "A@Example.org", Action: "failed", Status: [3]int{5, 1, 1}, Diagnostic: "550 no"}}},
	}, {
		name: "Original-Recipient when there is no Final-Recipient; blocks without an address skipped",
		in: dsn("Reporting-MTA: dns; relay.example.com\n\nOriginal-Recipient: rfc822;b@example.org\nAction: delivered\nStatus: 2.0.0\n\n" +
			"Action: failed\nStatus: 5.0.0\n\nFinal-Recipient: rfc822;\nOriginal-Recipient: rfc822; c@example.org\nAction: relayed\nStatus: 2.0.0\n"),
		want: Report{Kind: KindDelivery, UserAgent: "relay.example.com", Recipients: []Recipient{
			{Address: "b@example.org", Action: "delivered", Status: [3]int{2, 0, 0}},
			{Address: "c@example.org", Action: "relayed", Status: [3]int{2, 0, 0}}}},
	}, {
		name: "no per-message block, extra blank lines",
		in:   dsn("\n\nFinal-Recipient: rfc822; a@example.org\nAction: failed\nStatus: 5.1.1\n\n\n"),
		want: Report{Kind: KindDelivery, Recipients: []Recipient{postfixRecipient}},
	}, {
		name: "failed without Status: the enhanced code of the reply",
		in:   dsn("Final-Recipient: rfc822; a@example.org\nAction: failed\nDiagnostic-Code: smtp; 550 5.1.1 <a@example.org>: Recipient address rejected\n"),
		want: Report{Kind: KindDelivery, Recipients: []Recipient{{Address: "a@example.org", Action: "failed",
			Status: [3]int{5, 1, 1}, Diagnostic: "550 5.1.1 <a@example.org>: Recipient address rejected"}}},
	}, {
		name: "failed with a malformed Status: the class of the basic code",
		in:   dsn("Final-Recipient: rfc822; a@example.org\nAction: failed\nStatus: 5.1\nDiagnostic-Code: smtp; 554 delivery error: dd This user doesn't have an account\n"),
		want: Report{Kind: KindDelivery, Recipients: []Recipient{{Address: "a@example.org", Action: "failed",
			Status: [3]int{5, 0, 0}, Diagnostic: "554 delivery error: dd This user doesn't have an account"}}},
	}, {
		name: "delayed without Status stays without",
		in:   dsn("Final-Recipient: rfc822; a@example.org\nAction: delayed\nDiagnostic-Code: smtp; 451 4.7.1 try later\n"),
		want: Report{Kind: KindDelivery, Recipients: []Recipient{{Address: "a@example.org", Action: "delayed", Diagnostic: "451 4.7.1 try later"}}},
	}, {
		name: "quoted-printable delivery-status with a soft line break",
		in: multipart("multipart/report; report-type=delivery-status", humanPart,
			part{"Content-Type: message/delivery-status\nContent-Transfer-Encoding: quoted-printable",
				"Final-Recipient: rfc822; a@example.org\nAction: failed\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1 user=\n unknown =3D gone\n"},
			originalPart),
		want: Report{Kind: KindDelivery, Recipients: []Recipient{{Address: "a@example.org", Action: "failed",
			Status: [3]int{5, 1, 1}, Diagnostic: "550 5.1.1 user unknown = gone"}}},
	}, {
		name: "base64 delivery-status",
		in: multipart("multipart/report; report-type=delivery-status", humanPart,
			part{"Content-Type: message/delivery-status\nContent-Transfer-Encoding: BASE64",
				"UmVwb3J0aW5nLU1UQTogZG5zOyByZWxheS5leGFtcGxlLmNvbQoKRmluYWwtUmVjaXBpZW50OiBy\nZmM4MjI7IGFAZXhhbXBsZS5vcmcKQWN0aW9uOiBmYWlsZWQKU3RhdHVzOiA1LjEuMQo="},
			originalPart),
		want: Report{Kind: KindDelivery, UserAgent: "relay.example.com", Recipients: []Recipient{postfixRecipient}},
	}, {
		name: "unknown charset and transfer encoding are read undecoded",
		in: multipart("multipart/report; report-type=delivery-status",
			part{"Content-Type: text/plain; charset=x-klingon\nContent-Transfer-Encoding: x-uuencode", "begin 644 x"},
			part{"Content-Type: message/delivery-status\nContent-Transfer-Encoding: 7-bit", postfixFields},
			part{"Content-Type: text/rfc822-headers; charset=x-klingon", originalHeader}),
		want: Report{Kind: KindDelivery, UserAgent: "relay.example.com", Recipients: []Recipient{postfixRecipient}},
	}, {
		name: "RFC 6533 global delivery status and message/global-headers",
		in: multipart("multipart/report; report-type=delivery-status", humanPart,
			part{"Content-Type: message/global-delivery-status", "Reporting-MTA: dns; relay.example.com\n\nFinal-Recipient: utf-8; jörg@bücher.example\nAction: failed\nStatus: 5.1.1\n"},
			part{"Content-Type: message/global-headers", originalHeader}),
		want: Report{Kind: KindDelivery, UserAgent: "relay.example.com", Recipients: []Recipient{
			{Address: "jörg@bücher.example", Action: "failed", Status: [3]int{5, 1, 1}}}},
	}, {
		name: "message/rfc822-headers",
		in: multipart("multipart/report; report-type=delivery-status", humanPart,
			part{"Content-Type: message/delivery-status", postfixFields},
			part{"Content-Type: message/rfc822-headers", originalHeader}),
		want: Report{Kind: KindDelivery, UserAgent: "relay.example.com", Recipients: []Recipient{postfixRecipient}},
	}, {
		name: "parts out of order",
		in: multipart("multipart/report; report-type=delivery-status", originalPart,
			part{"Content-Type: message/delivery-status", postfixFields}, humanPart),
		want: Report{Kind: KindDelivery, UserAgent: "relay.example.com", Recipients: []Recipient{postfixRecipient}},
	}, {
		name:       "no original",
		in:         multipart("multipart/report; report-type=delivery-status", humanPart, part{"Content-Type: message/delivery-status", postfixFields}),
		want:       Report{Kind: KindDelivery, UserAgent: "relay.example.com", Recipients: []Recipient{postfixRecipient}},
		noOriginal: true,
	}, {
		name: "ARF: several Original-Rcpt-To, folded fields, type lower-cased",
		in:   arf("Feedback-Type: Not-Spam\nUser-Agent: SomeGenerator/1.0\n  (build 7)\nVersion: 1\nOriginal-Rcpt-To: <a@example.org>\nOriginal-Rcpt-To: b@example.org\nOriginal-Rcpt-To: <>\n"),
		want: Report{Kind: KindComplaint, FeedbackType: "not-spam", UserAgent: "SomeGenerator/1.0 (build 7)",
			Recipients: []Recipient{{Address: "a@example.org"}, {Address: "b@example.org"}}},
	}, {
		name: "ARF: the RFC 5965 minimum, report-type in capitals and quotes",
		in: multipart(`multipart/report; report-type="Feedback-Report"`, humanPart,
			part{"Content-Type: message/feedback-report", "Feedback-Type: fraud\nUser-Agent: SomeGenerator/1.0\nVersion: 1\n"}, originalPart),
		want: Report{Kind: KindComplaint, FeedbackType: "fraud", UserAgent: "SomeGenerator/1.0"},
	}, {
		name: "a report as a part of multipart/mixed",
		in: multipart("multipart/mixed", part{"Content-Type: text/plain", "See the report."},
			part{"Content-Type: multipart/report; report-type=delivery-status; boundary=inner",
				"--inner\nContent-Type: message/delivery-status\n\n" + postfixFields + "\n--inner\nContent-Type: text/rfc822-headers\n\n" + originalHeader + "\n--inner--"}),
		want: Report{Kind: KindDelivery, UserAgent: "relay.example.com", Recipients: []Recipient{postfixRecipient}},
	}, {
		name: "multipart/mixed: a read receipt skipped for the report after it",
		in: multipart("multipart/mixed",
			part{"Content-Type: multipart/report; report-type=disposition-notification; boundary=mdn",
				"--mdn\nContent-Type: message/disposition-notification\n\nDisposition: manual-action/MDN-sent-manually; displayed\n--mdn--"},
			part{"Content-Type: message/rfc822", dsn(postfixFields)}),
		want: Report{Kind: KindDelivery, UserAgent: "relay.example.com", Recipients: []Recipient{postfixRecipient}},
	}, {
		name: "cut short in the original, without a closing boundary",
		in:   cutBefore(dsn(postfixFields), "Subject: hi") + "Subj",
		want: Report{Kind: KindDelivery, UserAgent: "relay.example.com", Recipients: []Recipient{postfixRecipient}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if id := got.Original.Get("X-Pigeonpost-Id"); (id == pigeonpostID) == tc.noOriginal {
				t.Errorf("Original = %v", got.Original)
			}
			got.Original = nil
			if !reflect.DeepEqual(*got, tc.want) {
				t.Errorf("\n got %+v\nwant %+v", *got, tc.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name      string
		in        string
		notReport bool // else a malformed report
	}{
		{"empty", "", true},
		{"plain text", "Subject: hi\n\nhello\n", true},
		{"multipart/alternative", multipart("multipart/alternative", humanPart), true},
		{"read receipt", multipart("multipart/report; report-type=disposition-notification", humanPart,
			part{"Content-Type: message/disposition-notification", "Disposition: manual-action/MDN-sent-manually; displayed"}), true},
		{"no report-type", multipart("multipart/report", humanPart, part{"Content-Type: message/delivery-status", postfixFields}), true},
		{"a report two levels down", multipart("multipart/mixed", part{"Content-Type: message/rfc822", multipart("multipart/mixed",
			part{"Content-Type: message/rfc822", dsn(postfixFields)})}), true},
		{"a forward of a plain message", multipart("multipart/mixed", part{"Content-Type: message/rfc822", "Subject: hi\n\nhello"}), true},
		{"multipart/mixed without boundary", "Content-Type: multipart/mixed\n\n--x\n\n--x--\n", true},
		{"a header that cannot be read", "this is no header\n\nbody\n", false},
		{"no recipient block", dsn("Reporting-MTA: dns; relay.example.com\nArrival-Date: Tue, 14 May 2024 10:12:01 +0000\n"), false},
		{"no machine-readable part", multipart("multipart/report; report-type=delivery-status", humanPart, originalPart), false},
		{"the machine-readable part of the other kind", multipart("multipart/report; report-type=feedback-report", humanPart,
			part{"Content-Type: message/delivery-status", postfixFields}), false},
		{"no Feedback-Type", arf("User-Agent: SomeGenerator/1.0\nVersion: 1\n"), false},
		{"no boundary", "Content-Type: multipart/report; report-type=delivery-status\n\n--x\n\n--x--\n", false},
		{"cut short in the delivery-status part", cutBefore(dsn(postfixFields), "Action: failed"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := Parse(strings.NewReader(tc.in))
			if err == nil {
				t.Fatalf("no error; report %+v", rep)
			}
			if rep != nil {
				t.Errorf("report %+v with error %v", rep, err)
			}
			if errors.Is(err, ErrNotReport) != tc.notReport {
				t.Errorf("err = %v; want ErrNotReport: %v", err, tc.notReport)
			}
		})
	}
}

func TestPermanent(t *testing.T) {
	for _, tc := range []struct {
		rcpt Recipient
		want bool
	}{
		{Recipient{Action: "failed", Status: [3]int{5, 1, 1}}, true},
		{Recipient{Action: "failed", Status: [3]int{4, 4, 7}}, false},
		{Recipient{Action: "failed"}, false},
		{Recipient{Action: "delayed", Status: [3]int{5, 0, 0}}, false},
		{Recipient{Action: "delivered", Status: [3]int{2, 0, 0}}, false},
		{Recipient{}, false},
	} {
		if got := tc.rcpt.Permanent(); got != tc.want {
			t.Errorf("%+v.Permanent() = %v", tc.rcpt, got)
		}
	}
}

func TestParseStatus(t *testing.T) {
	for in, want := range map[string][3]int{
		"5.1.1":                           {5, 1, 1},
		" 4.4.1 ":                         {4, 4, 1},
		"5.1.1 (bad destination mailbox)": {5, 1, 1},
		"5.1.1(bad destination mailbox)":  {5, 1, 1},
		"2.0.0":                           {2, 0, 0},
		"5.1.10":                          {5, 1, 10},
		"5.999.999":                       {5, 999, 999},
		"":                                {},
		"5.1":                             {},
		"5.1.1.1":                         {},
		"3.1.1":                           {},
		"55.1.1":                          {},
		"5.1000.1":                        {},
		"5..1":                            {},
		"5.1.":                            {},
		"x.1.1":                           {},
		"5.+1.1":                          {},
		"550 5.1.1":                       {},
	} {
		if got := parseStatus(in); got != want {
			t.Errorf("parseStatus(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestReplyStatus(t *testing.T) {
	for in, want := range map[string][3]int{
		"550 5.1.1 <a@example.org>: Recipient address rejected": {5, 1, 1},
		"550-5.1.1 The account does not exist.":                 {5, 1, 1},
		"550 #5.1.0 Address rejected.":                          {5, 1, 0},
		"421 4.7.0 Try again later":                             {4, 7, 0},
		"550 5.7.1: Relay access denied":                        {5, 7, 1},
		"550 Requested action not taken":                        {5, 0, 0},
		"550":                                                   {5, 0, 0},
		"550 4.2.2 disagreeing codes":                           {5, 0, 0},
		"250 2.0.0 Ok":                                          {2, 0, 0},
		"650 6.0.0 no such class":                               {},
		"5501 5.1.1":                                            {},
		"host said: 550 5.1.1":                                  {},
		"":                                                      {},
		"55":                                                    {},
	} {
		if got := replyStatus(in); got != want {
			t.Errorf("replyStatus(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestAddress(t *testing.T) {
	for in, want := range map[string]string{
		"rfc822; a@example.org":     "a@example.org",
		"rfc822;a@example.org":      "a@example.org",
		"RFC822; <a@example.org>":   "a@example.org",
		" rfc822 ;  a@example.org ": "a@example.org",
		"<a@example.org>":           "a@example.org",
		"a@example.org":             "a@example.org",
		"utf-8; jörg@example.org":   "jörg@example.org",
		"rfc822;":                   "",
		"<>":                        "",
		"":                          "",
	} {
		if got := address(in); got != want {
			t.Errorf("address(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDiagnostic(t *testing.T) {
	long := "smtp; 550 " + strings.Repeat("é", 300) // 600 bytes after the type
	for in, want := range map[string]string{
		"smtp; 550 5.1.1 user unknown":           "550 5.1.1 user unknown",
		"X-Postfix; host not found":              "host not found",
		"smtp;550  5.1.1 \t folded   over lines": "550 5.1.1 folded over lines",
		"smtp; 550 a\x00b\x1bc":                  "550 a b c",
		"smtp; 550 \xff\xfe":                     "550 \uFFFD",
		"550 no type":                            "550 no type",
		long:                                     "550 " + strings.Repeat("é", 254), // 512 bytes would cut an é
	} {
		got := diagnostic(in)
		if got != want {
			t.Errorf("diagnostic(%q) = %q, want %q", in, got, want)
		}
		if len(got) > maxDiagnosticBytes {
			t.Errorf("diagnostic(%q) is %d bytes", in, len(got))
		}
	}
}

func TestParseCapsRecipients(t *testing.T) {
	fields := "Reporting-MTA: dns; relay.example.com\n\n" +
		strings.Repeat("Final-Recipient: rfc822;a@b\nAction: failed\n\n", 1500)
	rep, err := Parse(strings.NewReader(dsn(fields)))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Recipients) != maxRecipients {
		t.Errorf("%d recipients, want %d", len(rep.Recipients), maxRecipients)
	}
}

// A delivery-status part over maxStatusBytes is read up to its last recipient
// block read whole.
func TestParseCutsLongStatusPart(t *testing.T) {
	var fields strings.Builder
	fields.WriteString("Reporting-MTA: dns; relay.example.com\n\n")
	const blocks = 400
	for i := range blocks {
		fmt.Fprintf(&fields, "Final-Recipient: rfc822; user%d@example.org\nAction: failed\nStatus: 5.1.1\n"+
			"Diagnostic-Code: smtp; 550 5.1.1 <user%d@example.org>: Recipient address rejected:\n    User unknown in virtual mailbox table\n\n", i, i)
	}
	if fields.Len() <= maxStatusBytes {
		t.Fatalf("the part is only %d bytes", fields.Len())
	}
	rep, err := Parse(strings.NewReader(dsn(fields.String())))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(rep.Recipients); n < blocks/2 || n >= blocks {
		t.Fatalf("%d recipients", n)
	}
	for i, rcpt := range rep.Recipients {
		want := Recipient{
			Address:    fmt.Sprintf("user%d@example.org", i),
			Action:     "failed",
			Status:     [3]int{5, 1, 1},
			Diagnostic: fmt.Sprintf("550 5.1.1 <user%d@example.org>: Recipient address rejected: User unknown in virtual mailbox table", i),
		}
		if rcpt != want {
			t.Fatalf("recipient %d = %+v", i, rcpt)
		}
	}
}

// repeated reads its pattern over and over, without end.
type repeated struct {
	pattern string
	off     int
}

func (r *repeated) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.pattern[r.off:])
		n += c
		r.off = (r.off + c) % len(r.pattern)
	}
	return n, nil
}

// hugeOriginal builds a report whose original (its header given) is followed
// by a body of size bytes, streamed rather than held.
func hugeOriginal(header string, size int64) io.Reader {
	const body = "@@body@@"
	head, tail, _ := strings.Cut(multipart("multipart/report; report-type=delivery-status", humanPart,
		part{"Content-Type: message/delivery-status", postfixFields},
		part{"Content-Type: message/rfc822", header + "\n" + body}), body)
	return io.MultiReader(strings.NewReader(head),
		io.LimitReader(&repeated{pattern: "Lorem ipsum dolor sit amet, consectetur adipiscing elit.\n"}, size),
		strings.NewReader(tail))
}

// cutBefore returns s up to the last occurrence of sub: a message cut short.
func cutBefore(s, sub string) string {
	return s[:strings.LastIndex(s, sub)]
}

// allocated returns the bytes f allocates (the test must not run in parallel).
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestParseDrainsALargeOriginal(t *testing.T) {
	var rep *Report
	var err error
	alloc := allocated(func() { rep, err = Parse(hugeOriginal(originalHeader, 32<<20)) })
	if err != nil {
		t.Fatal(err)
	}
	if rep.Original.Get("X-Pigeonpost-Id") != pigeonpostID || len(rep.Original) != 3 {
		t.Errorf("Original = %v", rep.Original)
	}
	if alloc > 4<<20 {
		t.Errorf("parsing a report with a 32 MiB original allocated %d bytes", alloc)
	}
}

func TestParseCapsTheOriginalHeader(t *testing.T) {
	filler := strings.Repeat("X-Filler: "+strings.Repeat("f", 90)+"\n", 8<<10) // 800 KiB
	rep, err := Parse(hugeOriginal(originalHeader+filler, 1<<10))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Original.Get("X-Pigeonpost-Id") != pigeonpostID {
		t.Errorf("Original lost X-Pigeonpost-Id")
	}
	n := len(rep.Original.Values("X-Filler"))
	if n == 0 || n*101 > maxHeaderBytes {
		t.Errorf("%d X-Filler fields kept", n)
	}
}

// A header without end, the message's or a part's, fails the parse without
// being held.
func TestParseRefusesEndlessHeaders(t *testing.T) {
	for name, start := range map[string]string{
		"message": "Subject: hi\n",
		"part":    "Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n--b\n",
	} {
		junk := io.LimitReader(&repeated{pattern: "X-Junk: " + strings.Repeat("j", 70) + "\n"}, 64<<20)
		var err error
		alloc := allocated(func() { _, err = Parse(io.MultiReader(strings.NewReader(start), junk)) })
		if err == nil || errors.Is(err, ErrNotReport) {
			t.Errorf("%s: err = %v, want a malformed report", name, err)
		}
		if alloc > 16<<20 {
			t.Errorf("%s: an endless header allocated %d bytes", name, alloc)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	raw := readFixture(b, "dsn-postfix.eml")
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(bytes.NewReader(raw)); err != nil {
			b.Fatal(err)
		}
	}
}
