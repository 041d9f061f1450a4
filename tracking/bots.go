package tracking

import (
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// Bot and proxy filtering. Every request to the pixel or to a tracked link
// is recorded, but not every one is a person reading the mail: security
// gateways fetch every link of a message as it arrives, link checkers and
// chat previews fetch URLs they see, and some mailbox providers fetch every
// image through a proxy. Classify sorts a hit into one of three outcomes:
//
//   - a person: counted, sets openedAt/clickedAt, may fire the first-open or
//     first-click webhook;
//   - botFiltered: recorded with the rule that matched, but excluded from
//     openedAt/clickedAt, from the analytics counts and from webhooks;
//   - proxied: an image proxy fetched the pixel. Counted as an open, and
//     flagged with the kind of machine open so that users can decide how to
//     count it (Apple Mail Privacy Protection fetches every image when the
//     mail arrives, whether or not anyone reads it; Gmail's proxy fetches
//     when the message is displayed).
//
// The rules, first match wins (docs/tracking.md has the same table):
//
//	rule                     hits    matches                                       outcome
//	head_request             both    method HEAD (link checkers, prefetchers)      botFiltered
//	apple_mpp                open    User-Agent exactly "Mozilla/5.0", or a         proxied, apple_mpp
//	                                 client address in Apple's 17.0.0.0/8
//	google_image_proxy       open    User-Agent contains "GoogleImageProxy"        proxied, google_image_proxy
//	yahoo_mail_proxy         open    User-Agent contains "YahooMailProxy"          proxied, yahoo_mail_proxy
//	no_user_agent            both    no User-Agent at all (scripts, scanners)      botFiltered
//	known_bot_user_agent     both    User-Agent contains a name of botAgents:      botFiltered
//	                                 crawlers, link checkers, chat previews,
//	                                 security scanners, HTTP libraries
//	prefetch_after_delivery  both    within Classifier.PrefetchWindow of the        botFiltered
//	                                 delivery (or before it): a security
//	                                 gateway scanning the message on arrival
//
// The image proxies come before the timing rule: Apple's proxy fetches at
// delivery by design, and that open is flagged, not dropped. Rules look only
// at the request; nothing here is stored, so privacy mode loses nothing by
// classifying first and forgetting the address and agent afterwards.

// HitKind says which endpoint a hit reached.
type HitKind int

// The tracking endpoints.
const (
	HitOpen  HitKind = iota // the open pixel
	HitClick                // a tracked link
)

// Hit is what Classify looks at: one request to a tracking endpoint.
type Hit struct {
	Kind      HitKind
	Method    string     // HTTP method
	UserAgent string     // "" when the request had none
	IP        netip.Addr // the client address; the zero Addr when unknown
	// SinceDelivery is the time from the message's delivery to the hit.
	// Zero or negative means the hit came before the delivery was recorded,
	// which only a machine that saw the message in transit can do.
	SinceDelivery time.Duration
}

// Verdict is the outcome of Classify. The zero Verdict is a person.
type Verdict struct {
	Rule        string // the rule that matched; "" for a person
	BotFiltered bool   // recorded, but not counted and no webhook
	Proxied     bool   // fetched by an image proxy: counted, flagged
	MachineOpen string // for proxied opens, the kind: apple_mpp, google_image_proxy, yahoo_mail_proxy
}

// Classifier sorts tracking hits. The zero Classifier applies every rule but
// the timing one.
type Classifier struct {
	// PrefetchWindow is how soon after delivery a hit is taken for a
	// security gateway's prefetch rather than a person. 0 disables the rule.
	PrefetchWindow time.Duration
}

// rule is one row of the table.
type rule struct {
	name    string
	open    bool // applies to opens
	click   bool // applies to clicks
	match   func(c Classifier, h Hit) bool
	verdict Verdict
}

// appleNet is Apple's address block, from which Mail Privacy Protection
// fetches images.
var appleNet = netip.MustParsePrefix("17.0.0.0/8")

// botAgents are lower-case substrings of user agents that are never a person
// reading mail. Names of real mail clients (Outlook, Thunderbird, Apple Mail,
// mobile apps) must never be added here.
var botAgents = []string{
	// Crawlers, chat and social previews, headless browsers.
	"bot/", "crawler", "spider", "googlebot", "bingbot", "applebot", "yandexbot", "slackbot",
	"discordbot", "telegrambot", "twitterbot", "linkedinbot", "bingpreview", "facebookexternalhit",
	"whatsapp/", "skypeuripreview", "embedly", "headlesschrome", "phantomjs",
	// Link checkers.
	"linkcheck", "link-check", "link_check", "w3c-checklink", "w3c_validator", "xenu", "validator",
	// Security gateways and scanners.
	"barracuda", "proofpoint", "mimecast", "messagelabs", "symantec", "trendmicro", "trend micro",
	"forcepoint", "zscaler", "sophos", "fortiguard", "fortinet", "ironport", "appriver", "urlscan",
	"virustotal", "safelinks", "scanner", "security",
	// HTTP libraries and command-line tools.
	"curl/", "wget/", "python-requests", "python-urllib", "aiohttp", "go-http-client", "java/",
	"okhttp", "libwww-perl", "apache-httpclient", "axios/", "node-fetch", "undici", "httpie",
	"postmanruntime", "guzzlehttp", "ruby", "powershell",
}

// rules is the table, in order; the first match decides.
var rules = []rule{
	{name: "head_request", open: true, click: true,
		match:   func(_ Classifier, h Hit) bool { return h.Method == http.MethodHead },
		verdict: Verdict{BotFiltered: true}},
	{name: "apple_mpp", open: true,
		match: func(_ Classifier, h Hit) bool {
			return h.UserAgent == "Mozilla/5.0" || (h.IP.IsValid() && appleNet.Contains(h.IP.Unmap()))
		},
		verdict: Verdict{Proxied: true, MachineOpen: "apple_mpp"}},
	{name: "google_image_proxy", open: true,
		match:   func(_ Classifier, h Hit) bool { return strings.Contains(h.UserAgent, "GoogleImageProxy") },
		verdict: Verdict{Proxied: true, MachineOpen: "google_image_proxy"}},
	{name: "yahoo_mail_proxy", open: true,
		match:   func(_ Classifier, h Hit) bool { return strings.Contains(h.UserAgent, "YahooMailProxy") },
		verdict: Verdict{Proxied: true, MachineOpen: "yahoo_mail_proxy"}},
	{name: "no_user_agent", open: true, click: true,
		match:   func(_ Classifier, h Hit) bool { return strings.TrimSpace(h.UserAgent) == "" },
		verdict: Verdict{BotFiltered: true}},
	{name: "known_bot_user_agent", open: true, click: true,
		match: func(_ Classifier, h Hit) bool {
			ua := strings.ToLower(h.UserAgent)
			for _, b := range botAgents {
				if strings.Contains(ua, b) {
					return true
				}
			}
			return false
		},
		verdict: Verdict{BotFiltered: true}},
	{name: "prefetch_after_delivery", open: true, click: true,
		match: func(c Classifier, h Hit) bool {
			return c.PrefetchWindow > 0 && h.SinceDelivery < c.PrefetchWindow
		},
		verdict: Verdict{BotFiltered: true}},
}

// Classify returns the verdict of the first rule that matches h.
func (c Classifier) Classify(h Hit) Verdict {
	for _, r := range rules {
		if (h.Kind == HitOpen && !r.open) || (h.Kind == HitClick && !r.click) {
			continue
		}
		if r.match(c, h) {
			v := r.verdict
			v.Rule = r.name
			return v
		}
	}
	return Verdict{}
}

// RuleNames lists the rules in the order they are tried, for documentation
// and tests.
func RuleNames() []string {
	names := make([]string, len(rules))
	for i, r := range rules {
		names[i] = r.name
	}
	return names
}
