package testkit

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"mime/quotedprintable"
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

// NewsletterMessage returns a newsletter with images, where 1 MB messages
// come from: a multipart/related message from bench@bench.test to
// rcpt@example.net whose quoted-printable text/html part (a quarter of
// about size bytes) has `links` links and an <img> for each of four inline
// base64 PNG parts, which make up the rest. The image bytes are
// pseudo-random (the same every call), so they compress no better than real
// images. Like LoadMessage it has no Message-ID; extra header lines come
// after the usual ones.
func NewsletterMessage(size, links int, extra ...string) []byte {
	const images = 4
	var b bytes.Buffer
	b.WriteString("From: Newsletter <bench@bench.test>\r\nTo: rcpt@example.net\r\nSubject: newsletter 1\r\n" +
		"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/related; boundary=\"nl-related-0001\"; type=\"text/html\"\r\n")
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n--nl-related-0001\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")

	var h strings.Builder
	h.WriteString("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><style>td{padding:8px;font-family:Arial}</style></head>\n" +
		"<body style=\"margin:0\">\n<table width=\"100%\" cellpadding=\"0\" cellspacing=\"0\">\n")
	htmlSize := size / 4
	every := max(htmlSize/(links+1), 1)
	next, n := every, 0
	for i := 0; h.Len() < htmlSize; i++ {
		h.WriteString("<tr><td class=\"c\" style=\"color:#333333\">Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco.</td></tr>\n")
		if i%40 == 0 {
			fmt.Fprintf(&h, "<tr><td><img src=\"cid:img%d@bench\" width=\"600\" alt=\"picture %d\"></td></tr>\n", (i/40)%images, i/40)
		}
		if n < links && h.Len() >= next {
			fmt.Fprintf(&h, "<tr><td><a href=\"https://shop.example.com/offer/%04d?utm_source=newsletter&amp;utm_medium=email\" style=\"color:#0066cc\">Offer %04d</a></td></tr>\n", n, n)
			n++
			next += every
		}
	}
	h.WriteString("</table>\n</body></html>\n")
	qw := quotedprintable.NewWriter(&b)
	_, _ = qw.Write([]byte(strings.ReplaceAll(h.String(), "\n", "\r\n")))
	_ = qw.Close()

	rng := rand.New(rand.NewPCG(1, 2))
	imgSize := max((size-b.Len())*3/4/images, 1)
	raw := make([]byte, imgSize)
	for i := range images {
		for j := range raw {
			raw[j] = byte(rng.Uint32())
		}
		fmt.Fprintf(&b, "\r\n--nl-related-0001\r\nContent-Type: image/png; name=\"img%d.png\"\r\nContent-Transfer-Encoding: base64\r\n"+
			"Content-ID: <img%d@bench>\r\nContent-Disposition: inline; filename=\"img%d.png\"\r\n\r\n", i, i, i)
		enc := base64.StdEncoding.EncodeToString(raw)
		for len(enc) > 76 {
			b.WriteString(enc[:76] + "\r\n")
			enc = enc[76:]
		}
		b.WriteString(enc)
	}
	b.WriteString("\r\n--nl-related-0001--\r\n")
	return b.Bytes()
}
