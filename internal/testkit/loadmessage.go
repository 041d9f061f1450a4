package testkit

import (
	"fmt"
	"strings"
)

// LoadMessage returns the message cmd/smtpload sends in `make bench`: a
// 7bit text/html message from bench@bench.test to rcpt@example.net with a
// body of about size bytes and `links` links spread through it; extra
// header lines come after the usual ones. It has no Message-ID: with one,
// every submission after the first would be a recognised re-send.
func LoadMessage(size, links int, extra ...string) []byte {
	var b strings.Builder
	b.WriteString("From: Loadgen <bench@bench.test>\r\nTo: rcpt@example.net\r\nSubject: loadgen message 1\r\n" +
		"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n")
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n<!DOCTYPE html>\r\n<html><body>\r\n")
	start := b.Len()
	every := max(size/(links+1), 1)
	next, n := every, 0
	for b.Len()-start < size {
		b.WriteString("<p>lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor</p>\r\n")
		if n < links && b.Len()-start >= next {
			fmt.Fprintf(&b, "<a href=\"https://www.example.com/offer/%04d?utm_source=bench\">offer %04d</a>\r\n", n, n)
			n++
			next += every
		}
	}
	b.WriteString("</body></html>\r\n")
	return []byte(b.String())
}
