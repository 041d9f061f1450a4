package resttest

import (
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"time"

	message "github.com/emersion/go-message"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
)

// BrowserUA is a browser's User-Agent: hits with it are a person's.
const BrowserUA = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"

// TrackedHTML is the HTML of the tracked test mails: a link with an entity,
// a second link, and a password-reset link that stays untracked.
const TrackedHTML = `<html><body><p>Hi <a href="https://shop.example.test/a?x=1&amp;y=2">shop</a>` +
	` <a href="https://example.test/second">second</a>` +
	` <a href="https://example.test/reset?token=s3cret">reset</a></p></body></html>`

// SendTracked sends TrackedHTML from From to To with Key, opens and clicks
// tracked, extra added to the body, and returns the email id and the
// warnings of the answer.
func (c *Client) SendTracked(extra map[string]any) (string, []string) {
	c.t.Helper()
	body := map[string]any{
		"from": c.From, "to": c.To, "subject": "Tracked",
		"html": TrackedHTML, "text": "The plain version, without links.",
		"tracking": map[string]bool{"opens": true, "clicks": true},
	}
	for k, v := range extra {
		body[k] = v
	}
	var sent struct {
		ID       string
		Warnings []string
	}
	if code := c.JSON("POST", "/v1/emails", c.Key, body, &sent); code != http.StatusOK {
		c.t.Fatalf("send: %d %+v", code, sent)
	}
	return sent.ID, sent.Warnings
}

// TrackingURLs returns the paths of the pixel and the click links found in
// the email's content as it goes out (decoded MIME), with the host found.
func (c *Client) TrackingURLs(id string) (host, pixel string, clicks []string) {
	c.t.Helper()
	text := c.DecodedContent(id)
	re := regexp.MustCompile(`https?://([^/"\s]+)(/v1/track/(open|click)/[^"\s<>)]+)`)
	for _, m := range re.FindAllStringSubmatch(text, -1) {
		host = m[1]
		if m[3] == "open" {
			pixel = m[2]
		} else {
			clicks = append(clicks, m[2])
		}
	}
	return host, pixel, clicks
}

// DecodedContent returns the text and HTML parts of the email's content,
// transfer encodings undone.
func (c *Client) DecodedContent(id string) string {
	c.t.Helper()
	req, _ := http.NewRequest("GET", c.URL+"/v1/emails/"+id+"/content", nil)
	req.Header.Set("Authorization", "Bearer "+c.Key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	e, err := message.Read(resp.Body)
	if err != nil {
		c.t.Fatalf("content: %v", err)
	}
	var b strings.Builder
	var walk func(e *message.Entity)
	walk = func(e *message.Entity) {
		if mr := e.MultipartReader(); mr != nil {
			for p, err := mr.NextPart(); err == nil; p, err = mr.NextPart() {
				walk(p)
			}
			return
		}
		body, _ := io.ReadAll(e.Body)
		b.Write(body)
		b.WriteString("\n")
	}
	walk(e)
	return b.String()
}

// Hit is one request to a tracking endpoint.
type Hit struct {
	Method, Path, UserAgent, Referer string
	From                             string // source address; "" for the default
}

// Track sends h without following redirects and waits until the hit is
// recorded (SettleHits).
func (c *Client) Track(h Hit) *http.Response {
	c.t.Helper()
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	if h.From != "" {
		dialer.LocalAddr = &net.TCPAddr{IP: net.ParseIP(h.From)}
	}
	client := &http.Client{
		Transport:     &http.Transport{DialContext: dialer.DialContext, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	method := h.Method
	if method == "" {
		method = "GET"
	}
	req, _ := http.NewRequest(method, c.URL+h.Path, nil)
	req.Header.Set("User-Agent", h.UserAgent) // "" sends no User-Agent at all
	if h.Referer != "" {
		req.Header.Set("Referer", h.Referer)
	}
	resp, err := client.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, h.Path, err)
	}
	resp.Body.Close()
	c.SettleHits()
	return resp
}

// SettleHits waits until the gateway has recorded every tracking hit it
// answered: they are recorded after the answer.
func (c *Client) SettleHits() {
	c.t.Helper()
	testkit.WaitFor(c.t, "the answered tracking hits to be recorded", func() bool {
		return strings.Contains(c.Metrics(), "\npigeonpost_tracking_hits_queued 0\n")
	})
}

// TrackedEmail is what GET /v1/emails/:id says of tracking.
type TrackedEmail struct {
	ID        string     `json:"id"`
	Status    string     `json:"status"`
	OpenedAt  *time.Time `json:"openedAt"`
	ClickedAt *time.Time `json:"clickedAt"`
}

// Email gets the email id with Key.
func (c *Client) Email(id string) TrackedEmail {
	c.t.Helper()
	var e TrackedEmail
	c.getOK("GET email "+id, "/v1/emails/"+id, &e)
	return e
}

// Analytics is the answer of GET /v1/analytics.
type Analytics struct {
	From, To           string
	Sent, Delivered    int64
	Bounced            int64
	UniqueOpens        int64
	ProxiedUniqueOpens int64
	MachineUniqueOpens int64
	UniqueClicks       int64
	Opens, Clicks      int64
	BotFilteredOpens   int64
	BotFilteredClicks  int64
	OpenRate           float64
	ClickRate          float64
	BounceRate         float64
	Daily              []struct{ Date string }
}

// Analytics calls GET /v1/analytics with query (e.g. "tag=x") and Key.
func (c *Client) Analytics(query string) Analytics {
	c.t.Helper()
	var a Analytics
	c.getOK("analytics?"+query, "/v1/analytics?"+query, &a)
	return a
}
