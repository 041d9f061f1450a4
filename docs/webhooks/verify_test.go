package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/pipeline/webhooks"
)

// The Go snippet accepts what the gateway signs (webhooks.Sign) and
// refuses what webhooks.Verify refuses. make e2e runs all four snippets
// against a request the running gateway made.
func TestVerifyWebhook(t *testing.T) {
	secret := webhooks.NewSecret()
	body := []byte(`{"event":"email.delivered","timestamp":"2025-01-15T10:30:00.000Z","data":{"emailId":"em_1"}}`)
	at := time.Unix(1736937000, 0)
	header := webhooks.Sign(secret, at, body)
	sig := header[strings.Index(header, ",v1=")+4:]
	for _, c := range []struct {
		name   string
		secret string
		header string
		body   []byte
		now    time.Time
	}{
		{"valid", secret, header, body, at},
		{"within the tolerance", secret, header, body, at.Add(webhooks.DefaultTolerance)},
		{"clock behind", secret, header, body, at.Add(-time.Minute)},
		{"too late", secret, header, body, at.Add(webhooks.DefaultTolerance + time.Second)},
		{"a changed byte", secret, header, append([]byte(" "), body...), at},
		{"another secret", webhooks.NewSecret(), header, body, at},
		{"two signatures, the second matches", secret, "t=1736937000,v1=" + strings.Repeat("ab", 32) + ",v1=" + sig, body, at},
		{"spaces", secret, "t=1736937000, v1=" + sig, body, at},
		{"uppercase hex", secret, "t=1736937000,v1=" + strings.ToUpper(sig), body, at},
		{"timestamp changed", secret, "t=1736937001,v1=" + sig, body, at},
		{"no signature", secret, "t=1736937000", body, at},
		{"no timestamp", secret, "v1=" + sig, body, at},
		{"negative timestamp", secret, "t=-1,v1=" + sig, body, at},
		{"not hex", secret, "t=1736937000,v1=zz", body, at},
		{"garbage", secret, "garbage", body, at},
		{"empty", secret, "", body, at},
	} {
		want := webhooks.Verify(c.secret, c.header, c.body, c.now, webhooks.DefaultTolerance) == nil
		if got := verifyWebhook(c.secret, c.header, c.body, c.now); got != want {
			t.Errorf("%s: snippet says %v, webhooks.Verify %v", c.name, got, want)
		}
	}
}

// docs/tracking.md quotes each snippet whole, in a fenced block: the
// documentation shows what the tests run.
func TestDocsQuoteSnippets(t *testing.T) {
	doc, err := os.ReadFile("../tracking.md")
	if err != nil {
		t.Fatal(err)
	}
	for file, lang := range map[string]string{"verify.js": "js", "verify.py": "python", "verify.php": "php", "verify.go": "go"} {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(doc), "```"+lang+"\n"+string(src)+"```\n") {
			t.Errorf("docs/tracking.md does not quote docs/webhooks/%s whole in a ```%s block", file, lang)
		}
	}
}
