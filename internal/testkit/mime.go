package testkit

import (
	"bytes"
	"io"
	"testing"

	"github.com/emersion/go-message"
)

// MIMEPart is one leaf part of a message, with its transfer encoding
// decoded.
type MIMEPart struct {
	ContentType string
	Disposition string
	Filename    string
	ContentID   string
	Body        []byte
}

// MIMEParts parses raw and returns its header and its leaf parts, in
// order; it fails the test when the message does not parse.
func MIMEParts(t testing.TB, raw []byte) (message.Header, []MIMEPart) {
	t.Helper()
	e, err := message.Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("message does not parse: %v", err)
	}
	var parts []MIMEPart
	var walk func(e *message.Entity)
	walk = func(e *message.Entity) {
		if mr := e.MultipartReader(); mr != nil {
			for {
				p, err := mr.NextPart()
				if err == io.EOF {
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				walk(p)
			}
		}
		ct, _, _ := e.Header.ContentType()
		disp, params, _ := e.Header.ContentDisposition()
		body, err := io.ReadAll(e.Body)
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, MIMEPart{ContentType: ct, Disposition: disp, Filename: params["filename"],
			ContentID: e.Header.Get("Content-Id"), Body: body})
	}
	walk(e)
	return e.Header, parts
}
