package main

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/pem"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"unicode/utf8"

	"github.com/pigeonpost/pigeonpost/config"
	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/internal/testkit/resttest"
)

func TestRESTSendFields(t *testing.T) {
	s := startStack(t)
	from := "hello@" + senderDomain
	sent := s.SendOK(liveKey, map[string]any{
		"from": "Acme Ltd <" + from + ">", "to": []string{"a@" + rcptDomain, "b@" + rcptDomain},
		"cc": "c@" + rcptDomain, "bcc": []string{"d@" + rcptDomain}, "replyTo": "support@" + senderDomain,
		"subject": "Your order shipped!", "html": "<h1>Order #1234</h1><p>On its way.</p>",
		"tags": []string{"order", "shipping"}, "metadata": map[string]string{"userId": "123"},
		"headers": map[string]string{"List-Unsubscribe": "<mailto:unsub@" + senderDomain + ">"},
	}, nil)
	msgs := s.sink.Wait(t, 4, 20e9)
	var rcpts []string
	for _, m := range msgs {
		rcpts = append(rcpts, m.To...)
		data := string(m.Data)
		if strings.Contains(data, "\r\nBcc:") || strings.Contains(data, "d@"+rcptDomain) {
			t.Errorf("the Bcc recipient shows in the message:\n%s", data)
		}
		h, leaves := testkit.MIMEParts(t, m.Data)
		if h.Get("Cc") != "<c@"+rcptDomain+">" || h.Get("Reply-To") != "<support@"+senderDomain+">" || h.Get("List-Unsubscribe") == "" {
			t.Errorf("header: %v", h)
		}
		if len(leaves) != 2 || leaves[0].ContentType != "text/plain" || !strings.Contains(string(leaves[0].Body), "Order #1234") {
			t.Errorf("no generated text part: %+v", leaves)
		}
	}
	slices.Sort(rcpts)
	if strings.Join(rcpts, ",") != "a@example.test,b@example.test,c@example.test,d@example.test" {
		t.Errorf("envelope recipients %v", rcpts)
	}
	var e struct {
		Tags     []string
		Metadata map[string]string
	}
	s.JSON("GET", "/v1/emails/"+sent.ID, liveKey, nil, &e)
	if strings.Join(e.Tags, ",") != "order,shipping" || e.Metadata["userId"] != "123" {
		t.Errorf("tags and metadata: %+v", e)
	}

}

func TestRESTAttachmentsContent(t *testing.T) {
	s := startStack(t)
	from, to := "hello@"+senderDomain, "user@"+rcptDomain
	pdf := bytes.Repeat([]byte("%PDF-1.4 \x00\xff\r\n"), 1000)
	logo := []byte("\x89PNG\r\n\x1a\nlogo")
	s.SendOK(liveKey, map[string]any{
		"from": from, "to": to, "subject": "Your invoice", "html": `<p>See attached. <img src="cid:logo"></p>`,
		"attachments": []map[string]string{
			{"filename": "invoice.pdf", "content": base64.StdEncoding.EncodeToString(pdf)},
			{"filename": "logo.png", "content": base64.StdEncoding.EncodeToString(logo), "contentType": "image/png", "contentId": "logo"},
		},
	}, nil)
	m := s.sink.Wait(t, 1, 20e9)[0]
	_, leaves := testkit.MIMEParts(t, m.Data)
	byName := map[string]testkit.MIMEPart{}
	for _, l := range leaves {
		byName[l.Filename] = l
	}
	if l := byName["invoice.pdf"]; l.ContentType != "application/pdf" || !bytes.Equal(l.Body, pdf) {
		t.Errorf("invoice.pdf: %s, %d bytes", l.ContentType, len(l.Body))
	}
	if l := byName["logo.png"]; l.ContentID != "<logo>" || !bytes.Equal(l.Body, logo) {
		t.Errorf("logo.png: %+v", l)
	}
	if !strings.Contains(string(m.Data), "multipart/related") {
		t.Error("inline image without multipart/related")
	}

	if n := len(s.sink.Messages()); n != 1 {
		t.Errorf("%d messages at the sink, want 1", n)
	}
}

// An attachment path is fetched over HTTPS from a local server when the
// test switch allows loopback; without it the fetch is refused before any
// connection is made.
func TestRESTAttachmentPath(t *testing.T) {
	pdf := bytes.Repeat([]byte("remote file \x00\x01"), 5000)
	var requests, conns atomic.Int64
	files := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		switch r.URL.Path {
		case "/invoice.pdf":
			w.Header().Set("Content-Type", "application/pdf")
			_, _ = w.Write(pdf)
		case "/big":
			_, _ = w.Write(make([]byte, 7<<20+1))
		case "/redirect":
			http.Redirect(w, r, "http://127.0.0.1:1/x", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	files.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	files.StartTLS()
	defer files.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: files.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	from, to := "hello@"+senderDomain, "user@"+rcptDomain
	send := func(s *stack, path string) resttest.Response {
		return s.Call("POST", "/v1/emails", liveKey, nil, map[string]any{"from": from, "to": to, "subject": "s", "text": "t",
			"attachments": []map[string]string{{"filename": "invoice.pdf", "path": path}}})
	}

	t.Run("refused without the switch", func(t *testing.T) {
		s := startStack(t)
		for _, path := range []string{files.URL + "/invoice.pdf", strings.Replace(files.URL, "127.0.0.1", "localhost", 1) + "/invoice.pdf",
			strings.Replace(files.URL, "127.0.0.1", "[::ffff:127.0.0.1]", 1) + "/invoice.pdf"} {
			r := send(s, path)
			if r.Code != 400 || !strings.Contains(r.ErrMessage(), "attachments[0].path") || !strings.Contains(r.ErrMessage(), "loopback") {
				t.Errorf("%s: %d %s", path, r.Code, r.Body)
			}
		}
		for _, path := range []string{"http://127.0.0.1/x", "file:///etc/passwd", "gopher://x.test/", "https://user:pw@files.test/x", "not a url"} {
			r := send(s, path)
			if r.Code != 400 || !strings.Contains(r.ErrMessage(), "attachments[0].path") {
				t.Errorf("%s: %d %s", path, r.Code, r.Body)
			}
		}
		if n := conns.Load(); n != 0 {
			t.Errorf("the loopback server accepted %d connections", n)
		}
	})

	t.Run("fetched with the switch", func(t *testing.T) {
		s := startStack(t, func(c *config.Config) {
			c.Attachments.AllowPrivate = true
			c.Attachments.CAFile = caFile
		})
		if r := send(s, files.URL+"/invoice.pdf"); r.Code != http.StatusOK {
			t.Fatalf("%d %s", r.Code, r.Body)
		}
		m := s.sink.Wait(t, 1, 20e9)[0]
		_, leaves := testkit.MIMEParts(t, m.Data)
		if l := leaves[len(leaves)-1]; l.Filename != "invoice.pdf" || l.ContentType != "application/pdf" || !bytes.Equal(l.Body, pdf) {
			t.Errorf("attachment %s %s, %d bytes", l.Filename, l.ContentType, len(l.Body))
		}
		for path, want := range map[string]string{
			"/big":      "7 MB",
			"/missing":  "could not be fetched",
			"/redirect": "attachments[0].path",
		} {
			r := send(s, files.URL+path)
			if r.Code != 400 || !strings.Contains(r.ErrMessage(), want) {
				t.Errorf("%s: %d %s", path, r.Code, r.Body)
			}
		}
	})
}

// Header text a client sends reaches the destination encoded, never as a
// header of its own (S5): a subject, display names and a custom header
// that are not ASCII arrive as RFC 2047 encoded-words that decode to what
// was sent, in lines of at most 998 octets, with no Bcc field and the
// envelope recipients exactly those requested; an injection attempt is
// refused and nothing reaches the sink.
func TestRESTHeaderTextAtTheSink(t *testing.T) {
	s := startStack(t)
	from := "hello@" + senderDomain
	subject := "Bestätigung — Grüße aus Köln " + strings.Repeat("✓", 40)
	name := "Zoë =?utf-8?q?x=0D=0ABcc:_v@victim.test?= Müller"
	for _, body := range []map[string]any{
		{"subject": "Hi\r\nBcc: v@victim.test"},
		{"from": "Acme\r\nBcc: v@victim.test <" + from + ">"},
		{"headers": map[string]string{"X-A": "a\r\nBcc: v@victim.test"}},
		{"headers": map[string]string{"X-A": "a\u2028b"}},
	} {
		body["text"], body["to"] = "t", "a@"+rcptDomain
		body["from"] = cmp.Or(body["from"], any(from))
		body["subject"] = cmp.Or(body["subject"], any("s"))
		if r := s.Call("POST", "/v1/emails", liveKey, nil, body); r.Code != 400 {
			t.Errorf("%v: %d %s", body, r.Code, r.Body)
		}
	}
	s.SendOK(liveKey, map[string]any{
		"from": "Jürgen Groß <" + from + ">", "to": []string{"Ana Núñez <a@" + rcptDomain + ">", "b@" + rcptDomain},
		"bcc": "hidden@" + rcptDomain, "replyTo": "Süpport <support@" + senderDomain + ">",
		"subject": subject, "text": "t", "headers": map[string]string{"X-Customer": name},
	}, nil)
	msgs := s.sink.Wait(t, 3, 20e9)
	var rcpts []string
	for _, m := range msgs {
		rcpts = append(rcpts, m.To...)
		head, _, _ := bytes.Cut(m.Data, []byte("\r\n\r\n"))
		for _, line := range strings.Split(string(m.Data), "\r\n") {
			if len(line) > 998 {
				t.Errorf("a line of %d octets at the sink", len(line))
			}
		}
		if bytes.ContainsFunc(head, func(r rune) bool { return r >= utf8.RuneSelf }) {
			t.Errorf("8-bit header at the sink:\n%s", head)
		}
		msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := msg.Header["Bcc"]; ok || bytes.Contains(m.Data, []byte("hidden@")) {
			t.Errorf("the Bcc recipient shows:\n%s", head)
		}
		dec := new(mime.WordDecoder)
		if got, err := dec.DecodeHeader(msg.Header.Get("Subject")); err != nil || got != subject {
			t.Errorf("subject %q %v", got, err)
		}
		if got, err := dec.DecodeHeader(msg.Header.Get("X-Customer")); err != nil || got != name {
			t.Errorf("X-Customer %q %v", got, err)
		}
		if f, err := msg.Header.AddressList("From"); err != nil || f[0].Name != "Jürgen Groß" {
			t.Errorf("From %v %v", f, err)
		}
		if f, err := msg.Header.AddressList("Reply-To"); err != nil || f[0].Name != "Süpport" {
			t.Errorf("Reply-To %v %v", f, err)
		}
	}
	slices.Sort(rcpts)
	if want := []string{"a@" + rcptDomain, "b@" + rcptDomain, "hidden@" + rcptDomain}; !slices.Equal(rcpts, want) {
		t.Errorf("envelope recipients %v, want %v", rcpts, want)
	}
}
