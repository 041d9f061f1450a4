package main

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/config"
	"github.com/pigeonpost/pigeonpost/internal/testkit"
)

// TestClickAfterExpiryAndRotation is issue 14's first item on the whole
// stack with redis-server: a tracked link keeps redirecting after its
// email's record has expired (retention.records), counted on the account's
// analytics; a tampered id is still a 404; after a rotation of
// tracking.secret the link works while the old secret is listed, and not
// once it is dropped.
func TestClickAfterExpiryAndRotation(t *testing.T) {
	s := trackingStack(t, func(c *config.Config) {
		c.Retention.Content = time.Second
		c.Retention.Records = 2 * time.Second
	})
	const dest = "https://shop.example.test/receipt?id=42&utm_source=mail"
	var sent struct{ ID string }
	if code := s.JSON("POST", "/v1/emails", liveKey, map[string]any{"from": s.From, "to": s.To, "subject": "Your receipt",
		"html": `<p><a href="` + dest + `">Your receipt</a></p>`, "tracking": map[string]bool{"clicks": true}}, &sent); code != http.StatusOK {
		t.Fatalf("send: %d", code)
	}
	_, _, clicks := s.TrackingURLs(sent.ID)
	if len(clicks) == 0 {
		t.Fatal("no tracked link")
	}
	s.waitStatus(sent.ID, "delivered")

	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	click := func(path string) (int, string) {
		t.Helper()
		resp, err := noRedirect.Get("http://" + s.addrs.HTTP + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Location")
	}
	testkit.WaitFor(t, "the email's record to expire", func() bool {
		return s.Call("GET", "/v1/emails/"+sent.ID, liveKey, nil, nil).Code == http.StatusNotFound
	})
	if code, loc := click(clicks[0]); code != http.StatusFound || loc != dest {
		t.Fatalf("a click after the record expired: %d %q", code, loc)
	}
	var a struct{ ClicksAfterExpiry int64 }
	if s.JSON("GET", "/v1/analytics", liveKey, nil, &a); a.ClicksAfterExpiry != 1 {
		t.Errorf("clicksAfterExpiry %d, want 1", a.ClicksAfterExpiry)
	}
	// Another destination under the same MAC, or another MAC: no redirect.
	parts := strings.Split(clicks[0], ".")
	parts[3] = base64.RawURLEncoding.EncodeToString([]byte("https://evil.example.test/"))
	for _, bad := range []string{strings.Join(parts, "."), clicks[0][:len(clicks[0])-2] + "AA"} {
		if code, loc := click(bad); code != http.StatusNotFound {
			t.Errorf("a tampered id: %d %q", code, loc)
		}
	}

	for _, c := range []struct {
		secret string
		want   int
	}{
		{"a-rotated-tracking-secret," + testTrackingSecret, http.StatusFound},
		{"a-rotated-tracking-secret", http.StatusNotFound},
	} {
		s.stop()
		s.cfg.Tracking.Secret = c.secret
		s.start()
		if code, _ := click(clicks[0]); code != c.want {
			t.Errorf("tracking.secret %q: %d, want %d", c.secret, code, c.want)
		}
	}
}
