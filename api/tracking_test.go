package api_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/internal/testkit/resttest"
	"github.com/pigeonpost/pigeonpost/tracking"
)

// Tests of open and click tracking through the handler over the
// engagement part on a test Redis: the endpoints, bot filtering, privacy mode, settings,
// custom tracking domains, the events API and analytics.

type eventJSON struct {
	ID        string            `json:"id"`
	Type      string            `json:"type"`
	EmailID   string            `json:"emailId"`
	Timestamp time.Time         `json:"timestamp"`
	Data      map[string]string `json:"data"`
}

// emailEvents returns the email's events of type typ, oldest first.
func (s *server) emailEvents(id, typ string) []eventJSON {
	s.t.Helper()
	var out struct{ Data []eventJSON }
	if code := s.JSON("GET", "/v1/emails/"+id+"/events", liveKey, nil, &out); code != http.StatusOK {
		s.t.Fatalf("events of %s: %d", id, code)
	}
	var evs []eventJSON
	for _, e := range out.Data {
		if e.Type == typ {
			evs = append(evs, e)
		}
	}
	return evs
}

// gif is the pixel every open answers.
var gif = []byte{
	0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
	0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
	0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
}

func TestTrackingEndpoints(t *testing.T) {
	s := newServer(t)
	id, warnings := s.SendTracked(nil)
	if len(warnings) > 0 {
		t.Errorf("warnings: %q", warnings)
	}
	host, pixel, clicks := s.TrackingURLs(id)
	if host != "t.gateway.test" || pixel != "/v1/track/open/"+id || len(clicks) != 2 {
		t.Fatalf("tracking URLs: host %q, pixel %q, clicks %q", host, pixel, clicks)
	}
	if !strings.Contains(s.DecodedContent(id), `href="https://example.test/reset?token=s3cret"`) {
		t.Error("the password-reset link was rewritten")
	}
	s.markDelivered(id)
	signer := tracking.NewSigner([]byte(testTrackingSecret))

	t.Run("every pixel answer is the same GIF with no-cache headers", func(t *testing.T) {
		paths := []string{pixel, "/v1/track/open/em_doesnotexist", "/v1/track/open/" + strings.Repeat("x", 300), "/v1/track/open/%00%ff"}
		for _, p := range paths {
			req, _ := http.NewRequest("GET", s.URL+p, nil)
			req.Header.Set("User-Agent", browserUA)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			h := resp.Header
			if resp.StatusCode != 200 || !bytes.Equal(body, gif) || h.Get("Content-Type") != "image/gif" ||
				h.Get("Cache-Control") != "no-store, no-cache, must-revalidate, private" ||
				h.Get("Pragma") != "no-cache" || h.Get("Expires") != "0" {
				t.Errorf("%s: %d, %d bytes, %v", p, resp.StatusCode, len(body), h)
			}
		}
		s.SettleHits()
	})

	t.Run("the first open sets openedAt; every open is an event", func(t *testing.T) {
		// The real pixel was fetched once above.
		first := s.Email(id).OpenedAt
		if first == nil {
			t.Fatal("openedAt not set")
		}
		s.Track(resttest.Hit{Path: pixel, UserAgent: browserUA})
		if again := s.Email(id).OpenedAt; again == nil || !again.Equal(*first) {
			t.Errorf("openedAt moved: %v → %v", first, again)
		}
		evs := s.emailEvents(id, "opened")
		if len(evs) != 2 || evs[0].Data["first"] != "true" || evs[1].Data["first"] != "" {
			t.Fatalf("opened events: %+v", evs)
		}
		if evs[0].Data["userAgent"] != browserUA || evs[0].Data["ip"] != "127.0.0.1" {
			t.Errorf("visitor not recorded: %v", evs[0].Data)
		}
	})

	t.Run("a click redirects to the stored destination, whatever the url parameter says", func(t *testing.T) {
		resp := s.Track(resttest.Hit{Path: clicks[0] + "?url=https%3A%2F%2Fevil.test%2F", UserAgent: browserUA, Referer: "https://mail.example.test/"})
		if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "https://shop.example.test/a?x=1&y=2" {
			t.Errorf("click: %d → %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		resp = s.Track(resttest.Hit{Path: clicks[1], UserAgent: browserUA})
		if resp.Header.Get("Location") != "https://example.test/second" {
			t.Errorf("second link → %q", resp.Header.Get("Location"))
		}
		if s.Email(id).ClickedAt == nil {
			t.Error("clickedAt not set")
		}
		evs := s.emailEvents(id, "clicked")
		if len(evs) != 2 {
			t.Fatalf("clicked events: %+v", evs)
		}
		d := evs[0].Data
		if d["linkUrl"] != "https://shop.example.test/a?x=1&y=2" || d["linkIndex"] != "0" || d["first"] != "true" ||
			d["referer"] != "https://mail.example.test/" || d["ip"] != "127.0.0.1" || d["userAgent"] != browserUA {
			t.Errorf("first click: %v", d)
		}
		if d := evs[1].Data; d["linkIndex"] != "1" || d["first"] != "" {
			t.Errorf("second click: %v", d)
		}
	})

	t.Run("tampered, unknown and foreign ids get 404, no Location and no event", func(t *testing.T) {
		before := len(s.emailEvents(id, "clicked"))
		last := clicks[0][len(clicks[0])-1:]
		flip := map[string]string{"A": "B"}[last]
		if flip == "" {
			flip = "A"
		}
		bad := []string{
			clicks[0][:len(clicks[0])-1] + flip,                                 // one character of the MAC changed
			strings.Replace(clicks[0], id, id[:len(id)-1]+"x", 1),               // another email id, same MAC
			"/v1/track/click/" + signer.ClickID(id, 7),                          // valid MAC, no such link
			"/v1/track/click/" + signer.ClickID("em_doesnotexist", 0),           // valid MAC, no such email
			"/v1/track/click/" + tracking.NewSigner([]byte("x")).ClickID(id, 0), // another secret
			"/v1/track/click/garbage",
		}
		for _, p := range bad {
			resp := s.Track(resttest.Hit{Path: p + "?url=https%3A%2F%2Fevil.test%2F", UserAgent: browserUA})
			if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Location") != "" {
				t.Errorf("%s: %d → %q", p, resp.StatusCode, resp.Header.Get("Location"))
			}
		}
		if after := len(s.emailEvents(id, "clicked")); after != before {
			t.Errorf("%d click events recorded for bad ids", after-before)
		}
	})
}

// TestTrackingBotFiltering goes through the table of tracking/bots.go over
// HTTP: each rule's hit is recorded with the rule's name, sets neither
// openedAt nor clickedAt, and is not counted; proxies are counted and flagged.
func TestTrackingBotFiltering(t *testing.T) {
	s := newServer(t)
	cases := []struct {
		rule    string
		open    bool // the pixel, else the first link
		h       resttest.Hit
		proxied string // machine-open kind for proxies; "" for bots
	}{
		{"head_request", false, resttest.Hit{Method: "HEAD", UserAgent: browserUA}, ""},
		{"head_request", true, resttest.Hit{Method: "HEAD", UserAgent: browserUA}, ""},
		{"no_user_agent", true, resttest.Hit{}, ""},
		{"known_bot_user_agent", false, resttest.Hit{UserAgent: "Mozilla/5.0 (compatible; Barracuda Sentinel)"}, ""},
		{"known_bot_user_agent", false, resttest.Hit{UserAgent: "curl/8.5.0"}, ""},
		{"known_bot_user_agent", true, resttest.Hit{UserAgent: "python-requests/2.31"}, ""},
		{"google_image_proxy", true, resttest.Hit{UserAgent: "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"}, "google_image_proxy"},
		{"apple_mpp", true, resttest.Hit{UserAgent: "Mozilla/5.0"}, "apple_mpp"},
	}
	for _, c := range cases {
		kind := "click"
		if c.open {
			kind = "open"
		}
		t.Run(c.rule+"/"+kind+"/"+c.h.UserAgent, func(t *testing.T) {
			id, _ := s.SendTracked(nil)
			_, pixel, clicks := s.TrackingURLs(id)
			s.markDelivered(id)
			typ := "clicked"
			c.h.Path = clicks[0]
			if c.open {
				c.h.Path, typ = pixel, "opened"
			}
			resp := s.Track(c.h)
			if c.open && resp.StatusCode != http.StatusOK || !c.open && resp.StatusCode != http.StatusFound {
				t.Errorf("answer %d: bots get the same answer as people", resp.StatusCode)
			}
			evs := s.emailEvents(id, typ)
			if len(evs) != 1 {
				t.Fatalf("%s events: %+v", typ, evs)
			}
			e := s.Email(id)
			d := evs[0].Data
			if c.proxied == "" {
				if d["botFiltered"] != "true" || d["filterRule"] != c.rule || d["first"] != "" {
					t.Errorf("event data %v, want botFiltered by %s", d, c.rule)
				}
				if e.OpenedAt != nil || e.ClickedAt != nil {
					t.Errorf("a bot set openedAt %v / clickedAt %v", e.OpenedAt, e.ClickedAt)
				}
				return
			}
			if d["proxied"] != "true" || d["machineOpen"] != c.proxied || d["botFiltered"] != "" || d["first"] != "true" {
				t.Errorf("event data %v, want proxied %s", d, c.proxied)
			}
			if e.OpenedAt == nil {
				t.Error("a proxied open did not set openedAt")
			}
		})
	}

	// Bots are not counted; proxies are, and flagged.
	a := s.Analytics("")
	if a.UniqueOpens != 2 || a.ProxiedUniqueOpens != 2 || a.MachineUniqueOpens != 1 || a.UniqueClicks != 0 ||
		a.BotFilteredOpens != 3 || a.BotFilteredClicks != 3 {
		t.Errorf("analytics: %+v", a)
	}
}

// A click within the prefetch window of the delivery is a security
// gateway's; the same click once the window has passed is a person's.
func TestTrackingPrefetchWindow(t *testing.T) {
	s := newServer(t, func(c *serverConfig) { c.parts.Engagement.BotWindow = time.Hour })
	id, _ := s.SendTracked(nil)
	_, _, clicks := s.TrackingURLs(id)
	s.markDelivered(id)
	s.Track(resttest.Hit{Path: clicks[0], UserAgent: browserUA})
	evs := s.emailEvents(id, "clicked")
	if len(evs) != 1 || evs[0].Data["filterRule"] != "prefetch_after_delivery" || s.Email(id).ClickedAt != nil {
		t.Fatalf("click at delivery: %+v", evs)
	}
	if a := s.Analytics(""); a.UniqueClicks != 0 || a.BotFilteredClicks != 1 {
		t.Errorf("analytics: %+v", a)
	}
}

// TestTrackingPrivacyMode checks that with privacy mode on (for the account,
// or for the sending domain only) no Redis value holds the visitor's
// address, user agent or referer after an open and a click; and, as a
// control, that they are found when privacy mode is off. The event
// stream, which the webhooks are made from, is among the values scanned;
// no debug log names them either (S7).
func TestTrackingPrivacyMode(t *testing.T) {
	var logs logBuffer
	s := newServer(t, capturingLogs(&logs))
	rdb := s.p.Redis
	domainID := s.domainID(senderDomain)
	probe := func(n int) (ip, ua, referer string) {
		return fmt.Sprintf("127.0.0.%d", 10+n), fmt.Sprintf("PrivacyProbeAgent/%d.0 (X11; Linux)", 7700+n), fmt.Sprintf("https://referer%d.example.test/", n)
	}
	visit := func(n int) string {
		id, _ := s.SendTracked(nil)
		_, pixel, clicks := s.TrackingURLs(id)
		s.markDelivered(id)
		ip, ua, ref := probe(n)
		s.Track(resttest.Hit{Path: pixel, UserAgent: ua, Referer: ref, From: ip})
		s.Track(resttest.Hit{Path: clicks[0], UserAgent: ua, Referer: ref, From: ip})
		if e := s.Email(id); e.OpenedAt == nil || e.ClickedAt == nil {
			t.Fatalf("visit %d: hits not counted in privacy mode: %+v", n, e)
		}
		return id
	}
	found := func(n int) []string {
		ip, ua, ref := probe(n)
		return testkit.RedisKeysContaining(t, rdb, ip, ua, ref)
	}

	if code := s.JSON("PATCH", "/v1/tracking/defaults", liveKey, map[string]bool{"privacyMode": true}, nil); code != http.StatusOK {
		t.Fatalf("PATCH: %d", code)
	}
	visit(1)
	if f := found(1); len(f) > 0 {
		t.Errorf("account privacy mode: visitor data stored in %v", f)
	}

	// The domain's setting overrides the account's, both ways.
	s.JSON("PATCH", "/v1/tracking/defaults", liveKey, map[string]bool{"privacyMode": false}, nil)
	if code := s.JSON("PUT", "/v1/domains/"+domainID+"/tracking", liveKey, map[string]bool{"privacyMode": true}, nil); code != http.StatusOK {
		t.Fatalf("PUT domain tracking: %d", code)
	}
	visit(2)
	if f := found(2); len(f) > 0 {
		t.Errorf("domain privacy mode: visitor data stored in %v", f)
	}

	// Control: without privacy mode the same scan finds all three.
	s.JSON("PUT", "/v1/domains/"+domainID+"/tracking", liveKey, map[string]any{"privacyMode": nil}, nil)
	id := visit(3)
	ip, ua, ref := probe(3)
	for _, v := range []string{ip, ua, ref} {
		if len(testkit.RedisKeysContaining(t, rdb, v)) == 0 {
			t.Errorf("control: %q not found in Redis: the scan cannot see visitor data", v)
		}
	}
	if evs := s.emailEvents(id, "opened"); len(evs) != 1 || evs[0].Data["ip"] != ip {
		t.Errorf("control events: %+v", evs)
	}

	// No log line, at debug level, names a visitor: in privacy mode or not.
	// (Today no part logs anything on these paths; this keeps it so.)
	for n := 1; n <= 3; n++ {
		ip, ua, ref := probe(n)
		for _, v := range []string{ip, ua, ref} {
			if strings.Contains(logs.String(), v) {
				t.Errorf("the log names visitor data %q:\n%s", v, logs.String())
			}
		}
	}
}

// TestTrackingSettings covers GET/PATCH /v1/tracking/defaults and PUT
// /v1/domains/:id/tracking: what they store, and what they do to a send.
func TestTrackingSettings(t *testing.T) {
	s := newServer(t)
	domainID := s.domainID(senderDomain)

	var d map[string]any
	if code := s.JSON("GET", "/v1/tracking/defaults", liveKey, nil, &d); code != http.StatusOK {
		t.Fatalf("GET defaults: %d", code)
	}
	want := map[string]any{"trackingEnabled": true, "privacyMode": false, "webhookOnEveryOpen": false, "webhookOnEveryClick": false, "pixelPlacement": "bottom"}
	if fmt.Sprint(d) != fmt.Sprint(want) {
		t.Errorf("defaults %v, want %v", d, want)
	}

	t.Run("PATCH changes only the fields given", func(t *testing.T) {
		s.JSON("PATCH", "/v1/tracking/defaults", liveKey, map[string]bool{"webhookOnEveryClick": true}, &d)
		if d["webhookOnEveryClick"] != true || d["trackingEnabled"] != true || d["webhookOnEveryOpen"] != false {
			t.Errorf("after PATCH: %v", d)
		}
		s.JSON("PATCH", "/v1/tracking/defaults", liveKey, map[string]bool{"webhookOnEveryClick": false}, &d)
		var e resttest.APIError
		if code := s.JSON("PATCH", "/v1/tracking/defaults", liveKey, map[string]any{"privacyMode": "yes"}, &e); code != 400 || e.Error.Code != "validation_error" {
			t.Errorf("bad type: %d %+v", code, e)
		}
		if code := s.JSON("PATCH", "/v1/tracking/defaults", liveKey, map[string]any{"pixelPlacement": "middle"}, &e); code != 400 {
			t.Errorf("bad placement: %d %+v", code, e)
		}
	})

	t.Run("disabled for the account: options ignored, with a warning", func(t *testing.T) {
		s.JSON("PATCH", "/v1/tracking/defaults", liveKey, map[string]bool{"trackingEnabled": false}, nil)
		defer s.JSON("PATCH", "/v1/tracking/defaults", liveKey, map[string]bool{"trackingEnabled": true}, nil)
		id, warnings := s.SendTracked(nil)
		if len(warnings) != 1 || !strings.Contains(warnings[0], "tracking is disabled") {
			t.Errorf("warnings %q", warnings)
		}
		if _, pixel, clicks := s.TrackingURLs(id); pixel != "" || len(clicks) != 0 {
			t.Errorf("tracked anyway: %q %q", pixel, clicks)
		}
		// Mail that asks for nothing gets no warning.
		var sent struct{ Warnings []string }
		s.JSON("POST", "/v1/emails", liveKey, map[string]any{"from": "hello@" + senderDomain, "to": "user@" + rcptDomain, "subject": "x", "text": "x"}, &sent)
		if len(sent.Warnings) != 0 {
			t.Errorf("untracked mail got warnings %q", sent.Warnings)
		}
	})

	t.Run("the domain turns opens off: clicks still tracked, one warning", func(t *testing.T) {
		var dt map[string]any
		if code := s.JSON("PUT", "/v1/domains/"+domainID+"/tracking", liveKey, map[string]bool{"openTracking": false}, &dt); code != http.StatusOK {
			t.Fatalf("PUT: %d", code)
		}
		if dt["openTracking"] != false || dt["clickTracking"] != true || dt["privacyMode"] != nil || dt["domain"] != senderDomain {
			t.Errorf("domain tracking %v", dt)
		}
		defer s.JSON("PUT", "/v1/domains/"+domainID+"/tracking", liveKey, map[string]bool{}, nil)
		id, warnings := s.SendTracked(nil)
		if len(warnings) != 1 || !strings.Contains(warnings[0], "open tracking is disabled") {
			t.Errorf("warnings %q", warnings)
		}
		if _, pixel, clicks := s.TrackingURLs(id); pixel != "" || len(clicks) != 2 {
			t.Errorf("pixel %q, clicks %q", pixel, clicks)
		}
	})

	t.Run("top placement", func(t *testing.T) {
		s.JSON("PATCH", "/v1/tracking/defaults", liveKey, map[string]string{"pixelPlacement": "top"}, nil)
		defer s.JSON("PATCH", "/v1/tracking/defaults", liveKey, map[string]string{"pixelPlacement": "bottom"}, nil)
		id, _ := s.SendTracked(nil)
		if html := s.DecodedContent(id); !strings.Contains(html, "<body><img src=\"https://t.gateway.test/v1/track/open/"+id) {
			t.Errorf("pixel not at the top:\n%s", html)
		}
	})

	t.Run("settings need a full-permission key", func(t *testing.T) {
		var created struct{ Key string }
		s.JSON("POST", "/v1/api-keys", liveKey, map[string]string{"name": "sender", "permission": "sending"}, &created)
		var e resttest.APIError
		for _, c := range []struct{ method, path string }{
			{"GET", "/v1/tracking/defaults"}, {"PATCH", "/v1/tracking/defaults"}, {"PUT", "/v1/domains/" + domainID + "/tracking"},
		} {
			if code := s.JSON(c.method, c.path, created.Key, map[string]bool{"privacyMode": true}, &e); code != http.StatusForbidden {
				t.Errorf("%s %s with a sending key: %d", c.method, c.path, code)
			}
		}
		if code := s.JSON("PUT", "/v1/domains/dom_unknown/tracking", liveKey, map[string]bool{}, &e); code != http.StatusNotFound {
			t.Errorf("unknown domain: %d", code)
		}
	})
}

// TestTrackingDomain sets, verifies and uses a custom tracking domain.
func TestTrackingDomain(t *testing.T) {
	s := newServer(t)
	domainID := s.domainID(senderDomain)
	path := "/v1/domains/" + domainID + "/tracking"

	var e resttest.APIError
	if code := s.JSON("POST", path+"/verify", liveKey, nil, &e); code != http.StatusConflict {
		t.Errorf("verify before set: %d %+v", code, e)
	}
	for _, bad := range []string{"t.other.test", "not a name", "", senderDomain + ".evil.test"} {
		if code := s.JSON("POST", path+"/set-domain", liveKey, map[string]string{"trackingDomain": bad}, &e); code != 400 {
			t.Errorf("set-domain %q: %d", bad, code)
		}
	}

	var dt struct {
		TrackingDomain       *string
		TrackingDomainStatus *string
		DNSRecord            *struct{ Type, Name, Value, Status string }
	}
	if code := s.JSON("POST", path+"/set-domain", liveKey, map[string]string{"trackingDomain": "T.Acme.test."}, &dt); code != http.StatusOK {
		t.Fatalf("set-domain: %d", code)
	}
	if dt.TrackingDomain == nil || *dt.TrackingDomain != "t.acme.test" || *dt.TrackingDomainStatus != "pending" ||
		dt.DNSRecord == nil || dt.DNSRecord.Type != "CNAME" || dt.DNSRecord.Name != "t.acme.test" || dt.DNSRecord.Value != "t.gateway.test" {
		t.Fatalf("after set-domain: %+v %+v", dt, dt.DNSRecord)
	}

	// Not verified: URLs keep the public host.
	id, _ := s.SendTracked(nil)
	if host, _, _ := s.TrackingURLs(id); host != "t.gateway.test" {
		t.Errorf("pending domain used: %q", host)
	}

	// A CNAME elsewhere fails; the right one verifies.
	s.dns.SetCNAME("t.acme.test", "tracking.elsewhere.test")
	s.JSON("POST", path+"/verify", liveKey, nil, &dt)
	if *dt.TrackingDomainStatus != "failed" {
		t.Errorf("wrong CNAME: %s", *dt.TrackingDomainStatus)
	}
	s.dns.SetCNAME("t.acme.test", "t.gateway.test")
	s.JSON("POST", path+"/verify", liveKey, nil, &dt)
	if *dt.TrackingDomainStatus != "verified" {
		t.Fatalf("right CNAME: %s", *dt.TrackingDomainStatus)
	}

	id, _ = s.SendTracked(nil)
	host, pixel, clicks := s.TrackingURLs(id)
	if host != "t.acme.test" || pixel == "" || len(clicks) != 2 {
		t.Fatalf("verified domain: host %q pixel %q clicks %q", host, pixel, clicks)
	}
	// The gateway answers whatever host the CNAME brought the request to.
	if resp := s.Track(resttest.Hit{Path: clicks[1], UserAgent: browserUA}); resp.Header.Get("Location") != "https://example.test/second" {
		t.Errorf("click through the tracking domain: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// TestEventsAPI lists events with filters and cursor pagination.
func TestEventsAPI(t *testing.T) {
	s := newServer(t)
	start := time.Now().Add(-time.Second)
	var ids []string
	for range 3 {
		id, _ := s.SendTracked(nil)
		s.markDelivered(id)
		ids = append(ids, id)
	}
	_, pixel, _ := s.TrackingURLs(ids[1])
	s.Track(resttest.Hit{Path: pixel, UserAgent: browserUA})
	s.Track(resttest.Hit{Path: pixel, UserAgent: browserUA})

	type page struct {
		Data       []eventJSON
		NextCursor *string
		HasMore    bool
	}
	get := func(query string) page {
		t.Helper()
		var p page
		if code := s.JSON("GET", "/v1/events?"+query, liveKey, nil, &p); code != http.StatusOK {
			t.Fatalf("events?%s: %d", query, code)
		}
		return p
	}

	all := get("")
	// sent and delivered for each email, two opens.
	if len(all.Data) != 8 || all.NextCursor != nil || all.HasMore {
		t.Fatalf("all events: %d, cursor %v", len(all.Data), all.NextCursor)
	}
	for i := 1; i < len(all.Data); i++ {
		if all.Data[i].ID >= all.Data[i-1].ID && len(all.Data[i].ID) >= len(all.Data[i-1].ID) {
			t.Errorf("not newest first: %s after %s", all.Data[i].ID, all.Data[i-1].ID)
		}
	}
	if p := get("type=opened"); len(p.Data) != 2 || p.Data[0].EmailID != ids[1] || p.Data[0].Data["userAgent"] != browserUA {
		t.Errorf("type=opened: %+v", p.Data)
	}
	if p := get("type=email.delivered"); len(p.Data) != 3 {
		t.Errorf("type=email.delivered: %d", len(p.Data))
	}
	if p := get("emailId=" + ids[0]); len(p.Data) != 2 || p.Data[0].Type != "delivered" || p.Data[1].Type != "sent" {
		t.Errorf("emailId: %+v", p.Data)
	}
	if p := get("since=" + url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339))); len(p.Data) != 0 {
		t.Errorf("since the future: %+v", p.Data)
	}
	if p := get("since=" + url.QueryEscape(start.Format(time.RFC3339Nano))); len(p.Data) != 8 {
		t.Errorf("since the start: %d", len(p.Data))
	}

	// Pages of 3 walk through all 8 events, each once, in order.
	var walked []string
	cursor := ""
	for range 10 {
		p := get("limit=3&cursor=" + cursor)
		for _, e := range p.Data {
			walked = append(walked, e.ID)
		}
		if p.NextCursor == nil {
			break
		}
		cursor = *p.NextCursor
	}
	var want []string
	for _, e := range all.Data {
		want = append(want, e.ID)
	}
	if !slices.Equal(walked, want) {
		t.Errorf("paged %q, want %q", walked, want)
	}

	var e resttest.APIError
	for _, q := range []string{"type=exploded", "cursor=abc", "limit=1000", "since=yesterday"} {
		if code := s.JSON("GET", "/v1/events?"+q, liveKey, nil, &e); code != 400 || e.Error.Code != "validation_error" {
			t.Errorf("%s: %d %+v", q, code, e)
		}
	}
}

// TestAnalytics checks the counters and rates over recorded deliveries: five
// mails, one bounced (recorded as the delivery worker records it); two opened (one twice), one clicked, one bot open.
func TestAnalytics(t *testing.T) {
	s := newServer(t)
	var ids []string
	for i := range 5 {
		tags := []string{"all"}
		if i < 2 {
			tags = append(tags, "welcome")
		}
		id, _ := s.SendTracked(map[string]any{"tags": tags})
		if i == 4 {
			s.markBounced(id, "550 5.7.1 refused")
		} else {
			s.markDelivered(id)
		}
		ids = append(ids, id)
	}
	for _, i := range []int{0, 0, 1} {
		_, pixel, _ := s.TrackingURLs(ids[i])
		s.Track(resttest.Hit{Path: pixel, UserAgent: browserUA})
	}
	_, pixel, clicks := s.TrackingURLs(ids[2])
	s.Track(resttest.Hit{Path: pixel, UserAgent: "curl/8.5.0"})
	s.Track(resttest.Hit{Path: clicks[0], UserAgent: browserUA})

	a := s.Analytics("range=7d")
	today := time.Now().UTC().Format(time.DateOnly)
	if a.To != today || len(a.Daily) != 7 || a.Daily[6].Date != today {
		t.Errorf("range: %s..%s, %d days", a.From, a.To, len(a.Daily))
	}
	if a.Sent != 5 || a.Delivered != 4 || a.Bounced != 1 || a.UniqueOpens != 2 || a.Opens != 3 || a.UniqueClicks != 1 ||
		a.BotFilteredOpens != 1 || a.OpenRate != 0.5 || a.ClickRate != 0.25 || a.BounceRate != 0.2 {
		t.Errorf("analytics: %+v", a)
	}
	if w := s.Analytics("tag=welcome"); w.Sent != 2 || w.Delivered != 2 || w.UniqueOpens != 2 || w.OpenRate != 1 || w.UniqueClicks != 0 {
		t.Errorf("tag=welcome: %+v", w)
	}
	if d := s.Analytics("domain=" + senderDomain); d.Sent != 5 || d.UniqueClicks != 1 {
		t.Errorf("domain: %+v", d)
	}
	if d := s.Analytics("domain=" + s.domainID(senderDomain)); d.Sent != 5 {
		t.Errorf("domain by id: %+v", d)
	}
	if o := s.Analytics("domain=other.test"); o.Sent != 0 || o.OpenRate != 0 {
		t.Errorf("other domain: %+v", o)
	}
	if y := s.Analytics("from=2020-01-01&to=2020-01-31"); y.Sent != 0 || len(y.Daily) != 31 {
		t.Errorf("past month: %+v", y)
	}
	var e resttest.APIError
	for _, q := range []string{"range=0d", "range=1y", "range=400d", "from=2024-02-01&to=2024-01-01", "from=yesterday"} {
		if code := s.JSON("GET", "/v1/analytics?"+q, liveKey, nil, &e); code != 400 {
			t.Errorf("%s: %d", q, code)
		}
	}
}

// The pixel of an email that did not ask for open tracking records
// nothing: its id is known to whoever saw the email, and an open must not
// be recorded (with an IP address and a User-Agent) on mail that never
// asked for it.
func TestOpenOfUntrackedEmailRecordsNothing(t *testing.T) {
	s := newServer(t)
	var sent struct{ ID string }
	s.JSON("POST", "/v1/emails", liveKey, map[string]any{"from": "hello@" + senderDomain, "to": "user@" + rcptDomain,
		"subject": "s", "html": "<p>hi</p>"}, &sent)
	if r := s.Track(resttest.Hit{Path: "/v1/track/open/" + sent.ID, UserAgent: browserUA}); r.StatusCode != http.StatusOK {
		t.Fatalf("pixel: %d", r.StatusCode)
	}
	s.SettleHits()
	if evs := s.emailEvents(sent.ID, "opened"); len(evs) != 0 {
		t.Errorf("an open recorded on an untracked email: %+v", evs)
	}
}

// Over tracking.max_hits_per_ip_per_minute a client still gets the pixel
// and its redirect, and nothing more is recorded (issue 18: one address
// walking many ids wrote without end).
func TestTrackingRatePerIPAnswersAnyway(t *testing.T) {
	s := newServer(t, func(c *serverConfig) {
		c.parts.Engagement.MaxHitsPerIPPerMinute = 2
		c.parts.Engagement.LimitPrivateHits = true // the test's client is on loopback
	})
	id, _ := s.SendTracked(nil)
	_, pixel, clicks := s.TrackingURLs(id)
	s.markDelivered(id)
	for i := range 3 {
		if resp := s.Track(resttest.Hit{Path: clicks[0], UserAgent: browserUA}); resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "https://shop.example.test/a?x=1&y=2" {
			t.Errorf("click %d: %d → %q", i, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	if resp := s.Track(resttest.Hit{Path: pixel, UserAgent: browserUA}); resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/gif" {
		t.Errorf("pixel over the rate: %d %v", resp.StatusCode, resp.Header)
	}
	if n, o := len(s.emailEvents(id, "clicked")), len(s.emailEvents(id, "opened")); n != 2 || o != 0 {
		t.Errorf("%d clicks and %d opens recorded, want the first 2 clicks only", n, o)
	}
	if m := s.Metrics(); !strings.Contains(m, `pigeonpost_tracking_hits_total{result="rate_limited"} 2`) {
		t.Errorf("rate-limited hits not counted:\n%s", m)
	}
	// Another address keeps its own rate.
	if resp := s.Track(resttest.Hit{Path: pixel, UserAgent: browserUA, From: "127.0.0.2"}); resp.StatusCode != http.StatusOK {
		t.Fatalf("pixel: %d", resp.StatusCode)
	}
	if o := len(s.emailEvents(id, "opened")); o != 1 {
		t.Errorf("another address's open: %d recorded", o)
	}
}
