package pipeline

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
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
	if _, err := parseForTest(string(c.Message)); err != nil {
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

func TestHTMLToText(t *testing.T) {
	cases := map[string]string{
		"<p>a</p><p>b</p>":                  "a\n\nb\n",
		"a<br>b":                            "a\nb\n",
		"<ul><li>one</li><li>two</li></ul>": "- one\n- two\n",
		"<style>p{x:y}</style><script>evil()</script>x": "x\n",
		"&lt;tag&gt; &amp;   spaces\n\n here":           "<tag> & spaces here\n",
		`<a href="https://x.test">https://x.test</a>`:   "https://x.test\n",
		`<a href="javascript:alert(1)">click</a>`:       "click\n",
		`<img alt="Logo" src="x.png">Hi`:                "Logo Hi\n",
	}
	for in, want := range cases {
		if got := HTMLToText(in); got != want {
			t.Errorf("HTMLToText(%q) = %q, want %q", in, got, want)
		}
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
	if _, err := decodeBase64("attachments[3]", "not base64!"); err == nil || !strings.Contains(AsError(err).Message, "attachments[3].content") {
		t.Errorf("invalid base64: %v", err)
	}
	big := base64.StdEncoding.EncodeToString(make([]byte, MaxAttachmentBytes+1))
	if _, err := decodeBase64("attachments[1]", big); err == nil || !strings.Contains(AsError(err).Message, "attachments[1]") {
		t.Errorf("7 MB + 1: %v", err)
	}
	exact := base64.StdEncoding.EncodeToString(make([]byte, MaxAttachmentBytes))
	if _, err := decodeBase64("attachments[1]", exact); err != nil {
		t.Errorf("7 MB: %v", err)
	}
}

func TestCheckLabels(t *testing.T) {
	ok := map[string]string{"userId": "123"}
	if err := checkLabels([]string{"welcome"}, ok); err != nil {
		t.Fatal(err)
	}
	many := map[string]string{}
	for i := range MaxMetadataKeys + 1 {
		many[strings.Repeat("k", 1+i%30)+string(rune('a'+i%26))+string(rune('a'+i/26))] = "v"
	}
	cases := map[string]struct {
		tags []string
		md   map[string]string
		want string
	}{
		"tag with CRLF":     {[]string{"a\r\nb"}, nil, "tags[0]"},
		"too many tags":     {make([]string, MaxTags+1), nil, "tags: at most"},
		"empty tag":         {[]string{""}, nil, "tags[0]: must not be empty"},
		"value with LF":     {nil, map[string]string{"k": "a\nb"}, "metadata.k"},
		"key too long":      {nil, map[string]string{strings.Repeat("k", 41): "v"}, "metadata: key"},
		"value too long":    {nil, map[string]string{"k": strings.Repeat("v", 501)}, "metadata.k: must be at most 500"},
		"too many keys":     {nil, many, "metadata: at most 50 keys"},
		"too large in all":  {nil, bigMetadata(), "metadata: keys and values must total at most"},
		"NUL in a key name": {nil, map[string]string{"a\x00": "v"}, "metadata key"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			err := checkLabels(c.tags, c.md)
			if err == nil || AsError(err).HTTPStatus != 400 || !strings.Contains(AsError(err).Message, c.want) {
				t.Fatalf("got %v, want a 400 containing %q", err, c.want)
			}
		})
	}
}

func bigMetadata() map[string]string {
	m := map[string]string{}
	for i := range 10 {
		m["key"+string(rune('a'+i))] = strings.Repeat("v", 450)
	}
	return m
}
