package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/textproto"
	"sort"
	"strings"
)

// compareWithOriginal checks that pigeonpost changed only what it may
// change: it adds DKIM-Signature and X-Pigeonpost-Id (and Date and
// Message-ID when the client sent none), removes X-SP-Track-* and Bcc,
// and rewrites the body of the HTML part. Every other header field, of the
// message and of each MIME part, and the body of every other part must be
// as the client sent them.
// Values that differ between two runs of a client (Date, Message-ID, MIME
// boundaries, Content-ID) are not compared.
func compareWithOriginal(original, delivered []byte) (string, error) {
	want, err := flatten(original)
	if err != nil {
		return "", fmt.Errorf("the client's own message does not parse: %v", err)
	}
	got, err := flatten(delivered)
	if err != nil {
		return "", err
	}
	var problems []string
	problems = append(problems, diffFields("message header", want.top, got.top)...)
	if strings.Join(want.shape, " ") != strings.Join(got.shape, " ") {
		problems = append(problems, fmt.Sprintf("MIME structure %v, the client sent %v", got.shape, want.shape))
	} else {
		for i := range want.leaves {
			w, g := want.leaves[i], got.leaves[i]
			where := fmt.Sprintf("part %d (%s)", i+1, w.mediaType)
			problems = append(problems, diffFields(where+" header", w.fields, g.fields)...)
			if w.mediaType != "text/html" && !bytes.Equal(w.body, g.body) {
				problems = append(problems, fmt.Sprintf("%s body changed: %d bytes, the client sent %d", where, len(g.body), len(w.body)))
			}
		}
	}
	if len(problems) > 0 {
		return "", errors.New(strings.Join(problems, "\n"))
	}
	return fmt.Sprintf("%d header fields, %d parts compared", len(want.top), len(want.leaves)), nil
}

type flatMessage struct {
	top    []string // normalised "Name: value" of the message header
	shape  []string // media types, depth first
	leaves []leafPart
}

type leafPart struct {
	mediaType string
	fields    []string
	body      []byte // as transferred (not decoded)
}

func flatten(raw []byte) (*flatMessage, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	h := textproto.MIMEHeader(msg.Header)
	f := &flatMessage{top: normalizeFields(h)}
	return f, f.walk(h, msg.Body, true)
}

func (f *flatMessage) walk(h textproto.MIMEHeader, body io.Reader, top bool) error {
	ct := h.Get("Content-Type")
	if ct == "" {
		ct = "text/plain"
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return fmt.Errorf("Content-Type %q: %v", ct, err)
	}
	f.shape = append(f.shape, mt)
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return fmt.Errorf("%s: %v", mt, err)
			}
			if err := f.walk(p.Header, p, false); err != nil {
				return err
			}
		}
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return err
	}
	leaf := leafPart{mediaType: mt, body: b}
	if !top { // a single-part message's fields are already in f.top
		leaf.fields = normalizeFields(h)
	}
	f.leaves = append(f.leaves, leaf)
	return nil
}

// Fields that pigeonpost adds or removes, or whose values are new in each
// run of a client.
var (
	notCompared = map[string]bool{"Date": true, "Message-Id": true, "Content-Id": true, "Dkim-Signature": true,
		"X-Pigeonpost-Id": true}
	removed = map[string]bool{"X-Sp-Track-Opens": true, "X-Sp-Track-Clicks": true, "Bcc": true}
)

func normalizeFields(h textproto.MIMEHeader) []string {
	var out []string
	for k, vs := range h {
		k = textproto.CanonicalMIMEHeaderKey(k)
		if notCompared[k] || removed[k] {
			continue
		}
		for _, v := range vs {
			v = strings.Join(strings.Fields(v), " ")
			if k == "Content-Type" {
				if mt, params, err := mime.ParseMediaType(v); err == nil {
					delete(params, "boundary")
					v = mime.FormatMediaType(mt, params)
				}
			}
			out = append(out, k+": "+v)
		}
	}
	sort.Strings(out)
	return out
}

// diffFields reports the fields of want missing from got and those got has
// in addition (as multisets).
func diffFields(where string, want, got []string) []string {
	count := map[string]int{}
	for _, f := range got {
		count[f]++
	}
	var missing, added []string
	for _, f := range want {
		if count[f] > 0 {
			count[f]--
		} else {
			missing = append(missing, f)
		}
	}
	for _, f := range got {
		if count[f] > 0 {
			count[f]--
			added = append(added, f)
		}
	}
	var out []string
	if len(missing) > 0 {
		out = append(out, fmt.Sprintf("%s: lost or changed %q", where, missing))
	}
	if len(added) > 0 {
		out = append(out, fmt.Sprintf("%s: added %q", where, added))
	}
	return out
}
