package tracking

import (
	"bytes"
	"slices"
	"testing"
)

func TestSecretLink(t *testing.T) {
	tests := []struct {
		url    string
		secret bool
	}{
		// Keys of the documented list, any case, escaped or not.
		{"https://e.test/reset?token=abc", true},
		{"https://e.test/r?u=1&Token=abc", true},
		{"https://e.test/r?u=1;sig=abc", true},
		{"https://e.test/r?signature=abc", true},
		{"https://e.test/r?expires=1700000000", true},
		{"https://e.test/r?otp=1", true},
		// code, reset (and key, auth, session_id …) name a secret only
		// with a value that looks random: code=123456 and reset=1 were
		// secrets when any value counted, but the same names carry promo
		// codes and flags, and a 6-digit code is read and typed by people.
		{"https://e.test/r?code=123456", false},
		{"https://e.test/r?reset=1", false},
		{"https://e.test/r?code=4f9d2c1e8b7a6f5e4d3c2b1a", true},
		{"https://e.test/r?reset=4f9d2c1e8b7a6f5e4d3c2b1a", true},
		{"https://e.test/r?%74oken=abc", true},
		// Suffixes.
		{"https://e.test/r?access_token=abc", true},
		{"https://e.test/r?resetToken=abc", true},
		{"https://s3.e.test/f?X-Amz-Signature=ff&X-Amz-Expires=60", true},
		// Fragment parameters (OAuth implicit flow).
		{"https://e.test/cb#access_token=abc&state=1", true},
		// Not secrets.
		{"https://e.test/news?issue=7&utm_source=mail", false},
		{"https://e.test/token/abc", false},  // path, not query
		{"https://e.test/page#token", false}, // fragment without =
		{"https://e.test/r?tokens_left=3", false},
		{"https://e.test/?", false},
	}
	for _, tt := range tests {
		if got := secretLink(tt.url); got != tt.secret {
			t.Errorf("secretLink(%q) = %v, want %v", tt.url, got, tt.secret)
		}
	}
}

// TestSecretLinkRealWorld checks the rule on links as mail carries them:
// one-time secrets stay untracked, promo codes and campaign links do not.
func TestSecretLinkRealWorld(t *testing.T) {
	const s3 = "https://bucket.s3.eu-west-1.amazonaws.com/invoices/2024-03.pdf?X-Amz-Algorithm=AWS4-HMAC-SHA256" +
		"&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20240301%2Feu-west-1%2Fs3%2Faws4_request&X-Amz-Date=20240301T120000Z" +
		"&X-Amz-Expires=3600&X-Amz-SignedHeaders=host" +
		"&X-Amz-Signature=fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024"
	const azure = "https://acct.blob.core.windows.net/reports/q1.pdf?sv=2022-11-02&ss=b&srt=o&sp=r" +
		"&se=2024-04-01T00%3A00%3A00Z&st=2024-03-01T00%3A00%3A00Z&spr=https" +
		"&sig=Xq9P0cF2%2BhT4kL7mZ1vB3nD6wR8yE5uA0sJ2gK4iO6c%3D"
	const gcs = "https://storage.googleapis.com/bucket/report.pdf?X-Goog-Algorithm=GOOG4-RSA-SHA256" +
		"&X-Goog-Credential=sa%40project.iam.gserviceaccount.com%2F20240301%2Fauto%2Fstorage%2Fgoog4_request" +
		"&X-Goog-Date=20240301T120000Z&X-Goog-Expires=900&X-Goog-SignedHeaders=host" +
		"&X-Goog-Signature=8a3f0c9e6b2d4f1a7c5e9b3d1f0a2c4e6b8d0f1a3c5e7b9d1f2a4c6e8b0d2f4a"
	tests := []struct {
		name, url string
		secret    bool
	}{
		// One-time secrets: untracked.
		{"password reset", "https://app.example/reset?token=q8Zr2LxV9wNc4TbK7mPs1YdH", true},
		{"magic link token", "https://app.example/login/magic?token=Hn3kP9qWz2Xv7LmB4cTy", true},
		{"magic link key", "https://app.example/magic?key=7f3e9a1c5b2d8f4e6a0c9b3d", true},
		{"WordPress reset key", "https://blog.example/wp-login.php?action=rp&key=Xk3pQ9zL2mN7vB4cR8tY&login=jane", true},
		{"OAuth code (RFC 6749 example)", "https://app.example/auth/callback?code=SplxlOBeZQQYbYS6WxSbIA&state=xyz", true},
		{"GitHub OAuth code", "https://app.example/oauth/github?code=5f8a9c2b1d3e4f6a7b8c", true},
		{"verification UUID", "https://app.example/verify?code=550e8400-e29b-41d4-a716-446655440000", true},
		{"escaped base64 code", "https://app.example/cb?code=ab3De%2BfGh7%2FiJk9LmN%3D", true},
		{"OTP", "https://app.example/verify?otp=482913", true},
		{"JWT under auth", "https://app.example/sso?auth=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9.dBjftJeZ4CVP", true},
		{"signed URL (Laravel)", "https://app.example/unlock?expires=1709294400&signature=0f1e2d3c4b5a69788796a5b4c3d2e1f0", true},
		{"signed URL (CloudFront)", "https://d111.cloudfront.net/v.mp4?Expires=1709294400&Signature=Nql641NHE~Xr5Q&Key-Pair-Id=K2JCJMDEHXQW5F", true},
		{"S3 presigned", s3, true},
		{"GCS signed", gcs, true},
		{"Azure SAS", azure, true},
		{"Stripe checkout session", "https://shop.example/thanks?session_id=cs_live_a1B2c3D4e5F6g7H8i9J0kLmNoPqRsTuVwXyZ", true},
		{"PHP session id", "https://shop.example/cart?PHPSESSID=9d4e1e23bd5b727046a9e3b4b7db57bd", true},
		{"OAuth implicit fragment", "https://app.example/cb#access_token=ya29.a0AfH6SMBx3kQ&token_type=Bearer&expires_in=3599", true},
		// A long value mixing letters and digits under a generic name
		// counts as a secret even if people chose it: the rule errs on
		// the side of not tracking.
		{"long promo code", "https://shop.example/sale?code=SPRING-SALE-2024", true},

		// Everything else: tracked.
		{"promo code", "https://shop.example/sale?code=SUMMER20&utm_source=mail", false},
		{"promo code, word", "https://shop.example/sale?code=WELCOME", false},
		{"promo code, digits first", "https://shop.example/sale?code=10OFF", false},
		{"promo code, one-case phrase", "https://shop.example/sale?code=WELCOMEBACKFRIENDS", false},
		{"promo parameter", "https://shop.example/?promo=WELCOME10", false},
		{"coupon code", "https://shop.example/cart?coupon_code=FREESHIP", false},
		{"numeric code", "https://app.example/verify?email=jane%40example.com&code=482913", false},
		{"UTM tags", "https://shop.example/spring?utm_source=newsletter&utm_medium=email&utm_campaign=spring", false},
		{"unsubscribe in the body", "https://news.example/unsubscribe?email=jane%40example.com&id=123", false},
		{"video", "https://www.youtube.com/watch?v=dQw4w9WgXcQ", false},
		{"11-character code", "https://app.example/r?code=dQw4w9WgXcQ", false},
		{"product", "https://shop.example/p?sku=AB-1234", false},
		{"short session id", "https://shop.example/p?session_id=42", false},
		{"auth flag", "https://app.example/login?auth=1&next=%2Fdashboard", false},
		{"key holding a URL", "https://app.example/go?key=https%3A%2F%2Fshop.example%2Fspring-2024-sale", false},
		{"order number", "https://shop.example/orders?code=202403011234567890", false},
	}
	for _, tt := range tests {
		if got := secretLink(tt.url); got != tt.secret {
			t.Errorf("%s: secretLink(%q) = %v, want %v", tt.name, tt.url, got, tt.secret)
		}
	}
}

func TestListUnsubscribeURLs(t *testing.T) {
	got := listUnsubscribeURLs("<mailto:u@e.test?subject=x>, <https://e.test/u?a=1&b=2>,\t< https://e.test/\r\n folded >, <ftp://x>, <unterminated")
	want := []string{"https://e.test/u?a=1&b=2", "https://e.test/folded"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestRewriteText(t *testing.T) {
	const c0, c1 = "https://t.example.test/v1/track/click/c0", "https://t.example.test/v1/track/click/c1"
	tests := []struct {
		name  string
		in    string
		want  string
		links []string
	}{
		{"bare", "go to https://e.test/a now", "go to " + c0 + " now", []string{"https://e.test/a"}},
		{"start and end", "http://e.test/a", c0, []string{"http://e.test/a"}},
		{"sentence end", "See https://e.test/a. And https://e.test/b!", "See " + c0 + ". And " + c1 + "!", []string{"https://e.test/a", "https://e.test/b"}},
		{"brackets", "(https://e.test/a) [https://e.test/w_(x)]", "(" + c0 + ") [" + c1 + "]", []string{"https://e.test/a", "https://e.test/w_(x)"}},
		{"angle brackets", "<https://e.test/a?x=1&y=2>", "<" + c0 + ">", []string{"https://e.test/a?x=1&y=2"}},
		{"upper case scheme", "HTTPS://E.TEST/A", c0, []string{"HTTPS://E.TEST/A"}},
		{"glued to a word", "xhttps://e.test/a 1http://e.test/b", "xhttps://e.test/a 1http://e.test/b", nil},
		{"scheme only", "https:// and http://", "https:// and http://", nil},
		{"line ends", "a https://e.test/a\r\nb", "a " + c0 + "\r\nb", []string{"https://e.test/a"}},
		{"secret kept", "reset: https://e.test/r?token=x", "reset: https://e.test/r?token=x", nil},
		{"unsubscribe kept", "unsubscribe: https://e.test/u?l=1", "unsubscribe: https://e.test/u?l=1", nil},
		{"non-ASCII kept in URL", "https://e.test/caf\xc3\xa9 ok", c0 + " ok", []string{"https://e.test/caf\xc3\xa9"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := goldenOpts()
			opts.untracked = []string{"https://e.test/u?l=1"}
			r := rewriteText([]byte(tt.in), &opts, 0)
			if string(r.out) != tt.want {
				t.Errorf("got %q, want %q", r.out, tt.want)
			}
			if !slices.Equal(r.links, tt.links) {
				t.Errorf("links %q, want %q", r.links, tt.links)
			}
		})
	}
}

// TestRewriteTextParts checks text/plain rewriting inside a message: only
// with TextLinks, never for attachments, transfer encodings kept, and link
// indexes continuing into the HTML part in document order.
func TestRewriteTextParts(t *testing.T) {
	in := crlfText(`List-Unsubscribe: <https://e.test/unsub>
Content-Type: multipart/mixed; boundary=m

--m
Content-Type: multipart/alternative; boundary=a

--a
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Caf=C3=A9: https://e.test/qp?x=3D1 and https://e.test/unsub
--a
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: base64

aHR0cHM6Ly9lLnRlc3QvYjY0
--a
Content-Type: text/html

<a href="https://e.test/html">h</a> <a href="https://e.test/unsub">u</a>
--a--
--m
Content-Type: text/plain; name=notes.txt
Content-Disposition: attachment; filename=notes.txt

https://e.test/attached
--m--
`)
	opts := goldenOpts()
	opts.Opens = false

	out, res := rewriteBytes(t, in, opts)
	if !slices.Equal(res.Links, []string{"https://e.test/html"}) {
		t.Errorf("without TextLinks: links %q", res.Links)
	}
	checkInvariants(t, in, out, res)

	opts.TextLinks = true
	out, res = rewriteBytes(t, in, opts)
	want := []string{"https://e.test/qp?x=1", "https://e.test/b64", "https://e.test/html"}
	if !slices.Equal(res.Links, want) {
		t.Errorf("links %q, want %q", res.Links, want)
	}
	for _, s := range []string{
		"Caf=C3=A9: https://t.example.test/v1/track/click/c0 and https://e.test/unsu=\r\nb", // QP soft break
		"aHR0cHM6Ly90LmV4YW1wbGUudGVzdC92MS90cmFjay9jbGljay9jMQ==",                          // base64 of the click URL c1
		`<a href="https://t.example.test/v1/track/click/c2">h</a> <a href="https://e.test/unsub">u</a>`,
		"\r\nhttps://e.test/attached\r\n",
	} {
		if !bytes.Contains(out, []byte(s)) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}
	if len(res.Warnings) > 0 {
		t.Errorf("warnings %q", res.Warnings)
	}
	checkInvariantsText(t, in, out, res, true)

	// Clicks off: TextLinks alone changes nothing.
	opts.Clicks, opts.Opens = false, true
	_, res = rewriteBytes(t, in, opts)
	if len(res.Links) != 0 {
		t.Errorf("clicks off: links %q", res.Links)
	}
}
