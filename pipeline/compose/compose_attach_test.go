package compose

import (
	"bytes"
	"encoding/base64"
	"net/mail"
	"strings"
	"testing"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline"
)

func TestComposeAttachments(t *testing.T) {
	pdf := bytes.Repeat([]byte{0, 1, 2, 0xff, '\r', '\n'}, 5000)
	png := []byte("\x89PNG\r\n\x1a\nfake")
	c, err := ComposeMessage(Compose{
		From: "hello@acme.test", To: []string{"a@x.test"}, Subject: "Invoice",
		HTML: `<p>See <img src="cid:logo"></p>`,
		Attachments: []ComposeAttachment{
			{Filename: "invoice.pdf", ContentType: "application/pdf", Data: pdf},
			{Filename: "logo.png", ContentType: "image/png", ContentID: "logo", Data: png},
			{Filename: "résumé.txt", ContentType: "text/plain", Data: []byte("x")},
		},
	}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(c.Message), "\r\n") {
		if len(line) > 998 {
			t.Fatalf("line of %d bytes", len(line))
		}
	}
	h, leaves := testkit.MIMEParts(t, c.Message)
	root, _, _ := h.ContentType()
	if root != "multipart/mixed" {
		t.Errorf("root %s", root)
	}
	want := []testkit.MIMEPart{
		{ContentType: "text/plain"}, {ContentType: "text/html"},
		{ContentType: "image/png", Disposition: "inline", Filename: "logo.png", ContentID: "<logo>", Body: png},
		{ContentType: "application/pdf", Disposition: "attachment", Filename: "invoice.pdf", Body: pdf},
		{ContentType: "text/plain", Disposition: "attachment", Filename: "résumé.txt", Body: []byte("x")},
	}
	if len(leaves) != len(want) {
		t.Fatalf("%d leaves: %+v", len(leaves), leaves)
	}
	for i, w := range want {
		g := leaves[i]
		if g.ContentType != w.ContentType || g.Disposition != w.Disposition || g.Filename != w.Filename || g.ContentID != w.ContentID {
			t.Errorf("part %d: %s %s %q %s, want %s %s %q %s", i, g.ContentType, g.Disposition, g.Filename, g.ContentID,
				w.ContentType, w.Disposition, w.Filename, w.ContentID)
		}
		if w.Body != nil && !bytes.Equal(g.Body, w.Body) {
			t.Errorf("part %d: body differs (%d bytes, want %d)", i, len(g.Body), len(w.Body))
		}
	}
	if !strings.Contains(string(leaves[0].Body), "See") {
		t.Errorf("generated text: %q", leaves[0].Body)
	}
	if !strings.Contains(string(c.Message), "multipart/related") {
		t.Error("inline part without multipart/related")
	}
	if _, err := mail.ReadMessage(bytes.NewReader(c.Message)); err != nil {
		t.Errorf("composed message does not parse: %v", err)
	}
}

func TestComposeHTMLOnlyGetsText(t *testing.T) {
	c, err := ComposeMessage(Compose{From: "hello@acme.test", To: []string{"a@x.test"}, Subject: "s",
		HTML: "<h1>Order #1234</h1><p>Shipped <a href=\"https://acme.test/t\">track it</a></p>"}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	h, leaves := testkit.MIMEParts(t, c.Message)
	root, _, _ := h.ContentType()
	if root != "multipart/alternative" || len(leaves) != 2 || leaves[0].ContentType != "text/plain" {
		t.Fatalf("%s %+v", root, leaves)
	}
	if got := strings.ReplaceAll(string(leaves[0].Body), "\r\n", "\n"); got != "Order #1234\n\nShipped track it (https://acme.test/t)\n" {
		t.Errorf("text %q", got)
	}
}

func TestDecodeBase64(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 100)
	enc := base64.StdEncoding.EncodeToString(data)
	var wrapped strings.Builder
	for i := 0; i < len(enc); i += 76 {
		wrapped.WriteString(enc[i:min(i+76, len(enc))] + "\r\n")
	}
	for name, in := range map[string]string{"plain": enc, "wrapped": wrapped.String(), "unpadded": strings.TrimRight(enc, "=")} {
		if got, err := decodeBase64("attachments[0]", in); err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := decodeBase64("attachments[3]", "not base64!"); err == nil || !strings.Contains(pipeline.AsError(err).Message, "attachments[3].content") {
		t.Errorf("invalid base64: %v", err)
	}
	big := base64.StdEncoding.EncodeToString(make([]byte, MaxAttachmentBytes+1))
	if _, err := decodeBase64("attachments[1]", big); err == nil || !strings.Contains(pipeline.AsError(err).Message, "attachments[1]") {
		t.Errorf("7 MB + 1: %v", err)
	}
	exact := base64.StdEncoding.EncodeToString(make([]byte, MaxAttachmentBytes))
	if _, err := decodeBase64("attachments[1]", exact); err != nil {
		t.Errorf("7 MB: %v", err)
	}
}
