package tracking

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

const (
	chromeUA  = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
	outlookUA = "Mozilla/4.0 (compatible; ms-office; MSOffice 16)"
	iphoneUA  = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"
	gmailUA   = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)

// TestClassify has one group per rule of the table in bots.go, each with
// the hits it must catch, and the people no rule may catch.
func TestClassify(t *testing.T) {
	c := Classifier{PrefetchWindow: 3 * time.Second}
	late := time.Hour // long after delivery: only the request itself decides
	person := Verdict{}
	bot := func(rule string) Verdict { return Verdict{Rule: rule, BotFiltered: true} }
	proxy := func(rule string) Verdict { return Verdict{Rule: rule, Proxied: true, MachineOpen: rule} }
	ip := netip.MustParseAddr

	tests := []struct {
		rule string // the group: the rule the cases prove, "" for people
		name string
		hit  Hit
		want Verdict
	}{
		{"", "browser open", Hit{Kind: HitOpen, Method: "GET", UserAgent: chromeUA, IP: ip("203.0.113.9"), SinceDelivery: late}, person},
		{"", "outlook click", Hit{Kind: HitClick, Method: "GET", UserAgent: outlookUA, SinceDelivery: late}, person},
		{"", "click from Apple's network (the proxy rules are for opens)", Hit{Kind: HitClick, Method: "GET", UserAgent: "Mozilla/5.0", IP: ip("17.58.1.1"), SinceDelivery: late}, person},
		{"", "just outside the window", Hit{Kind: HitOpen, Method: "GET", UserAgent: iphoneUA, SinceDelivery: 3 * time.Second}, person},

		{"head_request", "HEAD on a link", Hit{Kind: HitClick, Method: "HEAD", UserAgent: chromeUA, SinceDelivery: late}, bot("head_request")},
		{"head_request", "HEAD on the pixel, even from a proxy", Hit{Kind: HitOpen, Method: "HEAD", UserAgent: gmailUA, SinceDelivery: late}, bot("head_request")},

		{"apple_mpp", "bare Mozilla/5.0", Hit{Kind: HitOpen, Method: "GET", UserAgent: "Mozilla/5.0", SinceDelivery: late}, proxy("apple_mpp")},
		{"apple_mpp", "Apple address, at delivery", Hit{Kind: HitOpen, Method: "GET", UserAgent: iphoneUA, IP: ip("17.100.2.3"), SinceDelivery: 0}, proxy("apple_mpp")},
		{"apple_mpp", "IPv4-mapped Apple address", Hit{Kind: HitOpen, Method: "GET", UserAgent: iphoneUA, IP: ip("::ffff:17.1.1.1"), SinceDelivery: late}, proxy("apple_mpp")},

		{"google_image_proxy", "Gmail's proxy", Hit{Kind: HitOpen, Method: "GET", UserAgent: gmailUA, SinceDelivery: late}, proxy("google_image_proxy")},
		{"google_image_proxy", "Gmail's proxy right after delivery", Hit{Kind: HitOpen, Method: "GET", UserAgent: gmailUA, SinceDelivery: time.Second}, proxy("google_image_proxy")},

		{"yahoo_mail_proxy", "Yahoo's proxy", Hit{Kind: HitOpen, Method: "GET", UserAgent: "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html", SinceDelivery: late}, proxy("yahoo_mail_proxy")},

		{"no_user_agent", "open without agent", Hit{Kind: HitOpen, Method: "GET", SinceDelivery: late}, bot("no_user_agent")},
		{"no_user_agent", "click with blank agent", Hit{Kind: HitClick, Method: "GET", UserAgent: "  ", SinceDelivery: late}, bot("no_user_agent")},

		{"known_bot_user_agent", "crawler", Hit{Kind: HitClick, Method: "GET", UserAgent: "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", SinceDelivery: late}, bot("known_bot_user_agent")},
		{"known_bot_user_agent", "chat preview", Hit{Kind: HitClick, Method: "GET", UserAgent: "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", SinceDelivery: late}, bot("known_bot_user_agent")},
		{"known_bot_user_agent", "link checker", Hit{Kind: HitClick, Method: "GET", UserAgent: "W3C-checklink/4.81 libwww-perl/6.72", SinceDelivery: late}, bot("known_bot_user_agent")},
		{"known_bot_user_agent", "security gateway", Hit{Kind: HitClick, Method: "GET", UserAgent: "Mozilla/5.0 (compatible; Barracuda Sentinel)", SinceDelivery: late}, bot("known_bot_user_agent")},
		{"known_bot_user_agent", "HTTP library", Hit{Kind: HitOpen, Method: "GET", UserAgent: "python-requests/2.31.0", SinceDelivery: late}, bot("known_bot_user_agent")},
		{"known_bot_user_agent", "Go client", Hit{Kind: HitClick, Method: "GET", UserAgent: "Go-http-client/1.1", SinceDelivery: late}, bot("known_bot_user_agent")},
		{"known_bot_user_agent", "headless browser", Hit{Kind: HitClick, Method: "GET", UserAgent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0 Safari/537.36", SinceDelivery: late}, bot("known_bot_user_agent")},

		{"prefetch_after_delivery", "click a second after delivery", Hit{Kind: HitClick, Method: "GET", UserAgent: chromeUA, SinceDelivery: time.Second}, bot("prefetch_after_delivery")},
		{"prefetch_after_delivery", "open before delivery was recorded", Hit{Kind: HitOpen, Method: "GET", UserAgent: chromeUA, SinceDelivery: -time.Second}, bot("prefetch_after_delivery")},
		{"prefetch_after_delivery", "click by a browser-like agent from Apple's network at delivery", Hit{Kind: HitClick, Method: "GET", UserAgent: "Mozilla/5.0", IP: ip("17.58.1.1"), SinceDelivery: 0}, bot("prefetch_after_delivery")},
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.rule] = true
		t.Run(tt.rule+"/"+tt.name, func(t *testing.T) {
			if got := c.Classify(tt.hit); got != tt.want {
				t.Errorf("Classify(%+v) = %+v, want %+v", tt.hit, got, tt.want)
			}
		})
	}
	for _, name := range RuleNames() {
		if !covered[name] {
			t.Errorf("rule %s has no test case", name)
		}
	}
}

// The timing rule is off in the zero Classifier.
func TestClassifyWithoutWindow(t *testing.T) {
	var c Classifier
	if got := c.Classify(Hit{Kind: HitClick, Method: "GET", UserAgent: chromeUA}); got != (Verdict{}) {
		t.Errorf("got %+v", got)
	}
}

// Real mail clients must never match the bot agents.
func TestBotAgentsSpareMailClients(t *testing.T) {
	clients := []string{
		chromeUA, outlookUA, iphoneUA,
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)",
		"Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Thunderbird/115.9.0",
		"Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17328; Pro)",
		"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
	}
	c := Classifier{}
	for _, ua := range clients {
		if v := c.Classify(Hit{Kind: HitClick, Method: "GET", UserAgent: ua, SinceDelivery: time.Hour}); v != (Verdict{}) {
			t.Errorf("%q classified %+v", ua, v)
		}
	}
	if !slices.Contains(RuleNames(), "prefetch_after_delivery") {
		t.Error("timing rule missing")
	}
}
