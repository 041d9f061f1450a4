package tracking

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// benchMessage is a multipart/alternative message whose quoted-printable
// HTML part is about 10 KB with 20 links.
func benchMessage() []byte {
	var h strings.Builder
	h.WriteString("<!DOCTYPE html><html><head><style>p{margin:0}</style></head><body>\n<table width=\"100%\">\n")
	for i := range 20 {
		fmt.Fprintf(&h, "<tr><td class=\"c\" style=\"padding:8px;font-family:Arial\">Item %d: Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat. "+
			"<a href=\"https://shop.example.com/products/%d?utm_source=newsletter&amp;utm_medium=email&amp;utm_campaign=spring\" style=\"color:#06c\">Read more</a></td></tr>\n", i, i)
	}
	h.WriteString("</table>\n</body></html>\n")

	var m bytes.Buffer
	m.WriteString("From: Shop <news@shop.example.com>\nTo: rcpt@example.net\nSubject: Spring news\nMIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=\"bench\"\n\n--bench\nContent-Type: text/plain; charset=utf-8\n\nSpring news in plain text.\n--bench\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n")
	m.Write(encodeQP([]byte(h.String())))
	m.WriteString("\n--bench--\n")
	return bytes.ReplaceAll(bytes.ReplaceAll(m.Bytes(), []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))
}

func BenchmarkRewrite10KB20Links(b *testing.B) {
	msg := benchMessage()
	benchRewrite(b, msg, goldenOpts(), func(res Result) bool {
		return len(res.Links) == 20 && len(msg) >= 10_000 && len(msg) <= 12_000
	})
}
