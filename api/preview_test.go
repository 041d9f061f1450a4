package api_test

import (
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/internal/testkit/resttest"
	"github.com/pigeonpost/pigeonpost/tracking"
)

// Tests of POST /v1/emails/preview: a send's body or raw MIME, answered
// with the email as it would go out, nothing stored.

type previewAnswer struct {
	MIME     string
	From     string
	To       string
	Subject  string
	Size     int
	Tracking struct{ Opens, Clicks bool }
	Links    []struct {
		Index   *int
		URL     string
		Tracked bool
		Reason  *string
	}
	Warnings []string
}

// preview posts body (a value to encode as JSON, or raw MIME as []byte)
// to the preview with key and query, and fails the test unless it is 200.
func (s *server) preview(key, query string, body any) previewAnswer {
	s.t.Helper()
	var headers map[string]string
	if _, raw := body.([]byte); raw {
		headers = map[string]string{"Content-Type": "message/rfc822"}
	}
	r := s.Call("POST", "/v1/emails/preview"+query, key, headers, body)
	if r.Code != http.StatusOK {
		s.t.Fatalf("preview: %d %s", r.Code, r.Body)
	}
	var p previewAnswer
	r.Decode(s.t, &p)
	if p.Size != len(p.MIME) && !strings.Contains(p.MIME, "\uFFFD") { // size counts the bytes U+FFFD stands for
		s.t.Errorf("size %d, mime of %d bytes", p.Size, len(p.MIME))
	}
	return p
}

// redisKeys is every key in the server's Redis, sorted.
func (s *server) redisKeys() []string {
	s.t.Helper()
	return testkit.RedisKeys(s.t, s.p.Redis, "*")
}

// wantKeys fails the test unless Redis holds the keys of before, no more.
func (s *server) wantKeys(before []string) {
	s.t.Helper()
	if after := s.redisKeys(); !slices.Equal(before, after) {
		s.t.Errorf("Redis keys changed:\nbefore %q\nafter  %q", before, after)
	}
}

// decodedParts is the bodies of the parts of msg, transfer encodings undone.
func decodedParts(t *testing.T, msg string) string {
	t.Helper()
	_, parts := testkit.MIMEParts(t, []byte(msg))
	var b strings.Builder
	for _, part := range parts {
		b.Write(part.Body)
		b.WriteString("\n")
	}
	return b.String()
}

// previewTracked is the body of SendTracked, for the preview.
func (s *server) previewTracked() map[string]any {
	return map[string]any{
		"from": s.From, "to": []string{s.To, "second@" + rcptDomain}, "subject": "Tracked",
		"html": resttest.TrackedHTML, "text": "The plain version, with https://example.test/plain in it.",
		"tracking": map[string]bool{"opens": true, "clicks": true},
	}
}

func TestPreviewJSON(t *testing.T) {
	s := newServer(t)
	before := s.redisKeys()
	// With an Idempotency-Key, which a preview ignores (nothing stored
	// under it): the same key with another body is not a 422.
	var p previewAnswer
	for _, to := range []string{"", "?to=Second@" + rcptDomain} {
		r := s.Call("POST", "/v1/emails/preview"+to, liveKey, map[string]string{"Idempotency-Key": "preview-1"}, s.previewTracked())
		if r.Code != http.StatusOK || r.Header.Get("Idempotent-Replayed") != "" {
			t.Fatalf("preview%s: %d %s", to, r.Code, r.Body)
		}
		r.Decode(t, &p)
	}
	if p.To != "second@"+rcptDomain || p.From != s.From || p.Subject != "Tracked" || !p.Tracking.Opens || !p.Tracking.Clicks || len(p.Warnings) != 0 {
		t.Errorf("answer %+v", p)
	}
	p = s.preview(liveKey, "", s.previewTracked())
	if p.To != s.To {
		t.Errorf("to %q, want the first recipient", p.To)
	}
	if !strings.HasPrefix(p.MIME, tracking.FeedbackHeader+": em_preview.") || !strings.Contains(p.MIME, "\r\nSubject: Tracked\r\n") {
		t.Errorf("mime:\n%s", p.MIME)
	}
	decoded := decodedParts(t, p.MIME)
	for _, want := range []string{
		`<img src="https://` + publicHost + `/v1/track/open/em_preview"`,
		`href="https://` + publicHost + `/v1/track/click/em_preview.1.`,
		`href="https://example.test/reset?token=s3cret"`,
		"https://" + publicHost + "/v1/track/click/em_preview.0.",
	} {
		if !strings.Contains(decoded, want) {
			t.Errorf("the preview lacks %s:\n%s", want, decoded)
		}
	}
	type link struct {
		index   int
		url     string
		tracked bool
		reason  string
	}
	var got []link
	for _, l := range p.Links {
		x := link{index: -1, url: l.URL, tracked: l.Tracked}
		if l.Index != nil {
			x.index = *l.Index
		}
		if l.Reason != nil {
			x.reason = *l.Reason
		}
		got = append(got, x)
	}
	want := []link{
		{0, "https://example.test/plain", true, ""},
		{1, "https://shop.example.test/a?x=1&y=2", true, ""},
		{2, "https://example.test/second", true, ""},
		{-1, "https://example.test/reset?token=s3cret", false, tracking.ReasonSecret},
	}
	if !slices.Equal(got, want) {
		t.Errorf("links %+v, want %+v", got, want)
	}
	s.wantKeys(before)
	if n := len(s.ListAll(liveKey, "")); n != 0 {
		t.Errorf("%d emails listed", n)
	}
	var usage struct{ Used int }
	if s.JSON("GET", "/v1/usage", liveKey, nil, &usage); usage.Used != 0 {
		t.Errorf("usage %d", usage.Used)
	}
}

func TestPreviewMIME(t *testing.T) {
	s := newServer(t)
	before := s.redisKeys()
	raw := "From: Acme <" + s.From + ">\nTo: " + s.To + "\nCc: cc@" + rcptDomain + "\nBcc: hidden@" + rcptDomain + "\n" +
		"Subject: Raw\nIdempotency-Key: raw-1\nX-SP-Track-Clicks: yes\nContent-Type: text/html\n\n" +
		`<p><a href="https://example.test/go">go</a> <a href="mailto:help@example.test">help</a></p>` + "\n"
	p := s.preview(liveKey, "?to=hidden@"+rcptDomain, []byte(raw))
	if p.To != "hidden@"+rcptDomain || p.Subject != "Raw" || p.Tracking.Opens || !p.Tracking.Clicks {
		t.Errorf("answer %+v", p)
	}
	for _, gone := range []string{"\nBcc:", "Idempotency-Key", "X-SP-Track", "\r\r"} {
		if strings.Contains(p.MIME, gone) {
			t.Errorf("the preview holds %q:\n%s", gone, p.MIME)
		}
	}
	if strings.Count(p.MIME, "\n") != strings.Count(p.MIME, "\r\n") || !strings.Contains(p.MIME, "\r\nMessage-Id: <") {
		t.Errorf("line endings or Message-Id:\n%q", p.MIME)
	}
	if len(p.Links) != 2 || !p.Links[0].Tracked || p.Links[1].Reason == nil || *p.Links[1].Reason != "a mailto: link" {
		t.Errorf("links %+v", p.Links)
	}

	// An 8bit part in Latin-1: JSON cannot carry its bytes, and says so.
	latin1 := "From: " + s.From + "\nTo: " + s.To + "\nSubject: Caf\xe9\nContent-Type: text/plain; charset=iso-8859-1\n" +
		"Content-Transfer-Encoding: 8bit\n\nCaf\xe9\n"
	if p := s.preview(liveKey, "", []byte(latin1)); !slices.ContainsFunc(p.Warnings, func(w string) bool { return strings.Contains(w, "not UTF-8") }) || !strings.Contains(p.MIME, "Caf\uFFFD\r\n") || p.Size != len(p.MIME)-4 {
		t.Errorf("Latin-1: warnings %q\n%s", p.Warnings, p.MIME)
	}

	for name, tc := range map[string]struct {
		raw, query, code string
	}{
		"not a recipient": {raw, "?to=other@" + rcptDomain, "validation_error"},
		"no recipient":    {"From: " + s.From + "\nSubject: x\n\nhi\n", "", "invalid_address"},
		"no From":         {"To: " + s.To + "\n\nhi\n", "", "invalid_message"},
		"unverified From": {strings.Replace(raw, s.From, "a@unverified.test", 1), "", "domain_not_verified"},
	} {
		r := s.Call("POST", "/v1/emails/preview"+tc.query, liveKey, map[string]string{"Content-Type": "message/rfc822"}, []byte(tc.raw))
		if r.ErrCode() != tc.code {
			t.Errorf("%s: %d %s, want %s", name, r.Code, r.Body, tc.code)
		}
	}
	s.wantKeys(before)
}

func TestPreviewTemplate(t *testing.T) {
	s := newServer(t)
	var tpl templateResp
	if code := s.JSON("POST", "/v1/templates", liveKey, map[string]string{
		"name": "welcome", "subject": "Welcome {{name}}!", "html": "<p>Hello {{name}} from {{company | default: \"us\"}}</p>",
	}, &tpl); code != http.StatusCreated {
		t.Fatalf("create: %d", code)
	}
	before := s.redisKeys()
	p := s.preview(liveKey, "", map[string]any{"from": s.From, "to": s.To, "templateId": tpl.ID,
		"variables": map[string]any{"name": "John <b>"}, "personalizations": map[string]any{"company": "Acme"}})
	_, parts := testkit.MIMEParts(t, []byte(p.MIME))
	if p.Subject != "Welcome John <b>!" || len(parts) != 2 || !strings.Contains(string(parts[1].Body), "<p>Hello John &lt;b&gt; from Acme</p>") {
		t.Errorf("%+v\n%+v", p, parts)
	}
	s.wantKeys(before)
	r := s.Call("POST", "/v1/emails/preview", liveKey, nil, map[string]any{"from": s.From, "to": s.To, "templateId": "tpl_missing"})
	if r.Code != http.StatusBadRequest || r.ErrCode() != "validation_error" {
		t.Errorf("unknown template: %d %s", r.Code, r.Body)
	}
}

// TestPreviewErrorsAreASendsErrors: for live and test keys, a preview is
// refused with the status, code and message a send gets.
func TestPreviewErrorsAreASendsErrors(t *testing.T) {
	s := newServer(t)
	testKey, _ := s.CreateKey(map[string]any{"name": "test", "mode": "test", "permission": "sending"})
	if code := s.JSON("POST", "/v1/suppressions", liveKey, map[string]string{"email": "gone@" + rcptDomain}, nil); code != http.StatusCreated {
		t.Fatalf("suppress: %d", code)
	}
	var tpl templateResp
	if code := s.JSON("POST", "/v1/templates", liveKey, map[string]string{"name": "t", "subject": "Hi {{name}}", "html": "<p>{{name}} {{other}}</p>"}, &tpl); code != http.StatusCreated {
		t.Fatalf("template: %d", code)
	}
	from, to := s.From, s.To
	for name, body := range map[string]any{
		"missing variables": map[string]any{"from": from, "to": to, "templateId": tpl.ID, "variables": map[string]string{"x": "y"}},
		"CRLF variable in the subject": map[string]any{"from": from, "to": to, "templateId": tpl.ID,
			"variables": map[string]string{"name": "x\r\nBcc: v@victim.test", "other": "o"}},
		"unverified from":      map[string]any{"from": "a@unverified.test", "to": to, "subject": "hi", "text": "x"},
		"bad recipient":        map[string]any{"from": from, "to": "not an address", "subject": "hi", "text": "x"},
		"wrong type":           map[string]any{"from": from, "to": to, "subject": 5, "text": "x"},
		"no body":              map[string]any{"from": from, "to": to, "subject": "hi"},
		"CR/LF in a header":    map[string]any{"from": from, "to": to, "subject": "hi", "text": "x", "headers": map[string]string{"X-A": "1\r\nBcc: x@evil.test"}},
		"every one suppressed": map[string]any{"from": from, "to": "gone@" + rcptDomain, "subject": "hi", "text": "x"},
		"unknown field":        map[string]any{"from": from, "to": to, "subject": "hi", "text": "x", "trackng": true},
		"past scheduled_at":    map[string]any{"from": from, "to": to, "subject": "hi", "text": "x", "scheduled_at": "2020-01-01T00:00:00Z"},
		"personalizations without a template": map[string]any{"from": from, "to": to, "subject": "hi", "text": "x",
			"personalizations": map[string]any{"a": "b"}},
	} {
		for _, key := range []string{liveKey, testKey} {
			send := s.Call("POST", "/v1/emails", key, nil, body)
			preview := s.Call("POST", "/v1/emails/preview", key, nil, body)
			if preview.Code != send.Code || preview.ErrCode() != send.ErrCode() || preview.ErrMessage() != send.ErrMessage() {
				t.Errorf("%s (%.7s): preview %d %s, send %d %s", name, key, preview.Code, preview.Body, send.Code, send.Body)
			}
			if key == liveKey && send.Code < 400 {
				t.Errorf("%s: the send was accepted: %s", name, send.Body)
			}
		}
	}
	r := s.Call("POST", "/v1/emails/preview", liveKey, nil, []byte(`{"padding":"`+strings.Repeat("a", defaultMaxBody)+`"}`))
	if r.Code != http.StatusRequestEntityTooLarge || r.ErrCode() != "payload_too_large" {
		t.Errorf("too large: %d %s", r.Code, r.Body)
	}
}

// TestPreviewLinksRecordNothing: a preview's click link is a 404 that
// records nothing, its pixel the usual GIF that records nothing; the same
// email sent has links that work.
func TestPreviewLinksRecordNothing(t *testing.T) {
	s := newServer(t)
	p := s.preview(liveKey, "", s.previewTracked())
	decoded := decodedParts(t, p.MIME)
	urls := regexp.MustCompile(`https://`+regexp.QuoteMeta(publicHost)+`(/v1/track/(?:open|click)/[^"\s<>]+)`).FindAllStringSubmatch(decoded, -1)
	if len(urls) != 4 { // the text's link, the HTML's two and its pixel
		t.Fatalf("tracking URLs %q in\n%s", urls, decoded)
	}
	before := s.redisKeys()
	for _, u := range urls {
		path := u[1]
		resp := s.Track(resttest.Hit{Path: path, UserAgent: browserUA})
		switch {
		case strings.HasPrefix(path, "/v1/track/open/"):
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/gif" {
				t.Errorf("pixel %s: %d", path, resp.StatusCode)
			}
		case resp.StatusCode != http.StatusNotFound || resp.Header.Get("Location") != "":
			t.Errorf("click %s: %d → %q", path, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	s.wantKeys(before)
	if a := s.Analytics(""); a.Opens != 0 || a.Clicks != 0 || a.BotFilteredOpens != 0 || a.BotFilteredClicks != 0 {
		t.Errorf("analytics %+v", a)
	}

	// What makes the difference is the purpose of the MAC: sealed as a
	// send's, the link of an email without a record would redirect (as a
	// link of expired mail does).
	sealed := s.p.Signer.SealedClickID(s.accountID, "em_preview", 0, "https://example.test/plain")
	if resp := s.Track(resttest.Hit{Path: "/v1/track/click/" + sealed, UserAgent: browserUA}); resp.StatusCode != http.StatusFound {
		t.Errorf("a sealed id of em_preview: %d", resp.StatusCode)
	}

	// The same email sent: its link redirects.
	id, _ := s.SendTracked(nil)
	_, _, clicks := s.TrackingURLs(id)
	if resp := s.Track(resttest.Hit{Path: clicks[0], UserAgent: browserUA}); resp.StatusCode != http.StatusFound {
		t.Errorf("the sent email's link: %d", resp.StatusCode)
	}
}
