package tracking

import (
	"bytes"
	"fmt"
	"mime/multipart"
	"mime/quotedprintable"
	"net/textproto"
	"strings"
	"testing"

	gomessage "github.com/emersion/go-message"
)

// TestRewriteFiveMegabyteHTML: a 5 MB quoted-printable HTML part beside a
// PDF attachment. Every link is rewritten, the pixel goes near the top
// (Gmail clips long mail, so a bottom pixel would never load), the
// attachment comes out byte for byte, and the result parses.
func TestRewriteFiveMegabyteHTML(t *testing.T) {
	var html strings.Builder
	html.WriteString("<html><body>")
	links := 0
	for html.Len() < 5<<20 {
		fmt.Fprintf(&html, `<p>Paragraph %d with caf&eacute; and a <a href="https://shop.example.test/item?id=%d&amp;ref=mail">link</a>.</p>`+"\n", links, links)
		links++
	}
	html.WriteString("</body></html>")

	var msg bytes.Buffer
	mw := multipart.NewWriter(&msg)
	fmt.Fprintf(&msg, "From: a@acme.test\r\nTo: b@x.test\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=%s\r\n\r\n", mw.Boundary())
	hp, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"text/html; charset=utf-8"}, "Content-Transfer-Encoding": {"quoted-printable"}})
	qp := quotedprintable.NewWriter(hp)
	qp.Write([]byte(html.String()))
	qp.Close()
	pdf := bytes.Repeat([]byte("JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFIvRmlsdGVyIC9GbGF0ZURlY29kZT4+\r\n"), 2000)
	ap, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/pdf"}, "Content-Transfer-Encoding": {"base64"},
		"Content-Disposition": {`attachment; filename="invoice.pdf"`}})
	ap.Write(pdf)
	mw.Close()
	msg.WriteString("\r\n")

	var out bytes.Buffer
	res, err := Rewrite(&out, bytes.NewReader(msg.Bytes()), Options{
		Opens: true, Clicks: true, PixelURL: "https://t.example.test/v1/track/open/em_big",
		ClickURL: func(i int, _ string) string { return fmt.Sprintf("https://t.example.test/v1/track/click/c%d", i) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Links) != links || res.Links[0] != "https://shop.example.test/item?id=0&ref=mail" || len(res.Warnings) != 0 {
		t.Fatalf("%d links (want %d), first %q, warnings %v", len(res.Links), links, res.Links[0], res.Warnings)
	}
	if !bytes.Contains(out.Bytes(), pdf) {
		t.Error("the attachment did not come out byte for byte")
	}
	ent, err := gomessage.Read(bytes.NewReader(out.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	mr := ent.MultipartReader()
	part, err := mr.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	var decoded bytes.Buffer
	if _, err := decoded.ReadFrom(part.Body); err != nil {
		t.Fatal(err)
	}
	body := decoded.String()
	pixel := strings.Index(body, "/v1/track/open/em_big")
	if pixel < 0 || pixel > 1000 {
		t.Errorf("pixel at %d, want near the top of a 5 MB part", pixel)
	}
	if strings.Contains(body, "https://shop.example.test/") || strings.Count(body, "/v1/track/click/c") != links {
		t.Error("not every link was rewritten")
	}
	for _, line := range bytes.Split(out.Bytes(), []byte("\r\n")) {
		if len(line) > 998 {
			t.Fatalf("line of %d octets in the output", len(line))
		}
	}
}
