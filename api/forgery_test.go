package api_test

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/pigeonpost/pigeonpost/pipeline/store"
	"github.com/pigeonpost/pigeonpost/tracking"
)

// answer is a tracking endpoint's raw answer.
type answer struct {
	code   int
	header http.Header
	body   []byte
}

// noRedirects is a client that shows redirects instead of following them.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func (s *server) get(path string) answer {
	s.t.Helper()
	req, _ := http.NewRequest("GET", s.URL+path, nil)
	req.Header.Set("User-Agent", browserUA)
	resp, err := noRedirects.Do(req)
	if err != nil {
		s.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	h := resp.Header.Clone()
	h.Del("Date")
	return answer{resp.StatusCode, h, body}
}

// trackingState is what a forged hit must not change: every event stream
// entry (the webhooks are sent from the stream), the emails' events and
// the count of recorded hits.
func (s *server) trackingState(ids ...string) string {
	s.t.Helper()
	s.SettleHits()
	var b strings.Builder
	fmt.Fprintf(&b, "stream %d\n", s.p.Redis.XLen(s.t.Context(), store.EventStreamKey(0)).Val())
	for _, id := range ids {
		fmt.Fprintf(&b, "%s events %d\n", id, s.p.Redis.LLen(s.t.Context(), store.EventsKey(id)).Val())
	}
	m := regexp.MustCompile(`(?m)^pigeonpost_tracking_hits_total\{result="recorded"\} .*$`).FindString(s.Metrics())
	return b.String() + m
}

// S7, pixel and click forgery: the email ids in pixels carry 128 random
// bits and click ids an HMAC over the email id and the link. 10,000
// random ids, ids with one character changed and another tenant's email
// id under a MAC that is not its own, on both endpoints: no event, no
// entry in the event stream (so no webhook), every pixel answer the same
// bytes and headers as a real one (no oracle of which emails exist), every
// click 404 with no Location.
func TestTrackingForgedIDs(t *testing.T) {
	s := newServer(t)
	b := s.tenantB()
	id, _ := s.SendTracked(nil)
	_, pixel, clicks := s.TrackingURLs(id)
	bID, _ := b.SendTracked(nil)
	_, bPixel, bClicks := b.TrackingURLs(bID)
	want := s.get(pixel) // the one real hit, which is recorded
	if want.code != http.StatusOK || !bytes.Equal(want.body, gif) {
		t.Fatalf("the real pixel: %d %v", want.code, want.header)
	}
	before := s.trackingState(id, bID)

	clickID := strings.TrimPrefix(clicks[0], "/v1/track/click/")
	bClickID := strings.TrimPrefix(bClicks[0], "/v1/track/click/")
	signer := tracking.NewSigner([]byte(testTrackingSecret))
	rng := rand.New(rand.NewPCG(18, 7))
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	randomString := func(n int, chars string) string {
		out := make([]byte, n)
		for i := range out {
			out[i] = chars[rng.IntN(len(chars))]
		}
		return string(out)
	}
	changeOne := func(s string) string {
		i := rng.IntN(len(s))
		c := alphabet[rng.IntN(len(alphabet))]
		if c == s[i] {
			c = '7'
			if s[i] == '7' {
				c = 'a'
			}
		}
		return s[:i] + string(c) + s[i+1:]
	}
	var opens, clickIDs []string
	for i := range 10_000 {
		switch i % 5 {
		case 0: // the form of a real id, random
			opens = append(opens, "em_"+randomString(26, alphabet))
			clickIDs = append(clickIDs, "em_"+randomString(26, alphabet)+".0."+randomString(22, alphabet+"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"))
		case 1: // anything
			opens = append(opens, url.PathEscape(randomString(1+rng.IntN(80), alphabet+"._-~!$&'()*+,;=:@%\x00\xff")))
			clickIDs = append(clickIDs, url.PathEscape(randomString(1+rng.IntN(200), alphabet+"._-~!$&'()*+,;=:@%\x00\xff")))
		case 2: // one character of a real id changed
			opens = append(opens, "em_"+changeOne(strings.TrimPrefix(id, "em_")))
			clickIDs = append(clickIDs, changeOne(clickID))
		case 3: // the other tenant's email under this tenant's MAC, and the other way
			opens = append(opens, "em_"+randomString(26, alphabet))
			clickIDs = append(clickIDs, strings.Replace(clickID, id, bID, 1), strings.Replace(bClickID, bID, id, 1))
		case 4: // valid MACs over links that do not exist, or another secret's
			opens = append(opens, "em_"+randomString(26, alphabet))
			clickIDs = append(clickIDs, signer.ClickID(id, 3+rng.IntN(100)), signer.ClickID("em_"+randomString(26, alphabet), 0),
				tracking.NewSigner([]byte("another secret")).ClickID(bID, 0))
		}
	}

	// Four clients at a time: a bounded load.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var problems []string
	report := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(problems) < 20 {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	work := make(chan func())
	for range 4 {
		wg.Go(func() {
			for f := range work {
				f()
			}
		})
	}
	for _, o := range opens {
		work <- func() {
			if got := s.get("/v1/track/open/" + o); got.code != want.code || !bytes.Equal(got.body, want.body) || !maps.EqualFunc(got.header, want.header, func(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }) {
				report("open %q: %d %v, want the real pixel's %v", o, got.code, got.header, want.header)
			}
		}
	}
	for _, c := range clickIDs {
		work <- func() {
			if got := s.get("/v1/track/click/" + c + "?url=https%3A%2F%2Fevil.test%2F"); got.code != http.StatusNotFound || got.header.Get("Location") != "" ||
				!bytes.Contains(got.body, []byte(`"code":"not_found"`)) {
				report("click %q: %d %v %s", c, got.code, got.header, got.body)
			}
		}
	}
	close(work)
	wg.Wait()
	for _, p := range problems {
		t.Error(p)
	}
	if after := s.trackingState(id, bID); after != before {
		t.Errorf("forged hits changed what is recorded:\n%s\nwas\n%s", after, before)
	}

	// The other tenant's own links still work, and are its own.
	if got := s.get(bPixel); got.code != http.StatusOK {
		t.Errorf("tenant B's pixel: %d", got.code)
	}
	if got := s.get(bClicks[0]); got.code != http.StatusFound || got.header.Get("Location") != "https://shop.example.test/a?x=1&y=2" {
		t.Errorf("tenant B's click: %d %q", got.code, got.header.Get("Location"))
	}
	s.SettleHits()
	if n := s.p.Redis.LLen(t.Context(), store.EventsKey(bID)).Val(); n != 2 {
		t.Errorf("tenant B's email has %d events, want its open and its click: %v", n, s.p.Redis.LRange(t.Context(), store.EventsKey(bID), 0, -1).Val())
	}
}

// S6: hrefs that run script where they are opened (javascript:, vbscript:,
// data:, in any case, with the white space and entities browsers ignore)
// are not made into tracked links at send time: the gateway never
// redirects to one. The https link beside them is.
func TestTrackingKeepsScriptHrefs(t *testing.T) {
	s := newServer(t)
	hrefs := []string{
		"javascript:alert(1)", "JaVaScRiPt:alert(document.cookie)", " javascript:alert(1)", "java&#x09;script:alert(1)",
		"&#106;avascript:alert(1)", "vbscript:msgbox(1)", "VBScript:msgbox(1)",
		"data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==", "DATA:text/html,<script>alert(1)</script>",
	}
	var html strings.Builder
	html.WriteString(`<html><body><a href="https://shop.example.test/ok">ok</a>`)
	for i, h := range hrefs {
		fmt.Fprintf(&html, `<a href="%s">%d</a>`, strings.ReplaceAll(h, `<`, "&lt;"), i)
	}
	html.WriteString(`</body></html>`)
	id, _ := s.SendTracked(map[string]any{"html": html.String()})
	_, _, clicks := s.TrackingURLs(id)
	if len(clicks) != 1 {
		t.Fatalf("%d tracked links, want only the https one: %q", len(clicks), clicks)
	}
	if got := s.get(clicks[0]); got.header.Get("Location") != "https://shop.example.test/ok" {
		t.Errorf("the https link redirects to %q", got.header.Get("Location"))
	}
	content := s.DecodedContent(id)
	for _, h := range hrefs {
		if !strings.Contains(content, `href="`+strings.ReplaceAll(h, `<`, "&lt;")+`"`) {
			t.Errorf("href %q not kept as it was", h)
		}
	}
}
