package dashboard_test

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A login with a full key opens a session: an HttpOnly, SameSite=Strict
// cookie for ttl, a Redis record expiring with it, and a CSRF token with
// which the cookie calls the REST API. Logging out ends it everywhere.
func TestSessionLoginAndLogout(t *testing.T) {
	e := newEnv(t, envOptions{})
	cookie, s := e.login(fullKey)
	if cookie.Name != "pp_session" || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode ||
		cookie.Path != "/" || cookie.MaxAge != int(ttl/time.Second) || cookie.Secure {
		t.Errorf("session cookie over plain HTTP = %+v, want pp_session, HttpOnly, SameSite=Strict, Path=/, Max-Age %d, not Secure",
			cookie, int(ttl/time.Second))
	}
	if want := e.clock.Now().Add(ttl); !s.ExpiresAt.Equal(want) {
		t.Errorf("session expires %v, want %v", s.ExpiresAt, want)
	}
	pttl, err := e.p.Redis.PTTL(t.Context(), redisKey(cookie)).Result()
	if err != nil || pttl <= 0 || pttl > ttl {
		t.Errorf("the session's Redis record has TTL %v (%v), want in (0, %v]", pttl, err, ttl)
	}

	res, b := e.do(req{method: "GET", path: "/dashboard/session", cookie: cookie, headers: e.browser()})
	if res.StatusCode != http.StatusOK || !strings.Contains(string(b), s.CSRFToken) {
		t.Errorf("GET /dashboard/session: %d %s, want the session's CSRF token", res.StatusCode, b)
	}
	if res, b := e.do(req{method: "GET", path: "/v1/api-keys", cookie: cookie, csrf: s.CSRFToken, headers: e.browser()}); res.StatusCode != http.StatusOK {
		t.Fatalf("the REST API with the session: %d %s", res.StatusCode, b)
	}

	if res, _ := e.do(req{method: "POST", path: "/dashboard/logout", cookie: cookie, headers: e.browser()}); res.StatusCode != http.StatusForbidden {
		t.Errorf("logout without the CSRF token: %d, want 403", res.StatusCode)
	}
	res, b = e.do(req{method: "POST", path: "/dashboard/logout", cookie: cookie, headers: e.browser(), form: url.Values{"csrf": {s.CSRFToken}}})
	if res.StatusCode != http.StatusNoContent {
		t.Fatalf("logout: %d %s", res.StatusCode, b)
	}
	if c := sessionCookie(res); c == nil || c.MaxAge >= 0 || c.Value != "" {
		t.Errorf("logout's cookie %+v, want it deleted", c)
	}
	if n, _ := e.p.Redis.Exists(t.Context(), redisKey(cookie)).Result(); n != 0 {
		t.Error("the session's Redis record is still there after logout")
	}
	e.wantNoSession(t, "after logout", cookie, s.CSRFToken)
}

// A session past its lifetime is refused, even before Redis expires it.
func TestSessionExpires(t *testing.T) {
	e := newEnv(t, envOptions{})
	cookie, s := e.login(fullKey)
	e.clock.Add(ttl - time.Second)
	if res, _ := e.do(req{method: "GET", path: "/v1/api-keys", cookie: cookie, csrf: s.CSRFToken, headers: e.browser()}); res.StatusCode != http.StatusOK {
		t.Fatalf("a second before expiry: %d, want 200", res.StatusCode)
	}
	e.clock.Add(time.Second)
	e.wantNoSession(t, "at expiry", cookie, s.CSRFToken)
}

// Revoking the key a session was opened with ends the session on its next
// request, and its record goes.
func TestSessionEndsWithItsKey(t *testing.T) {
	e := newEnv(t, envOptions{})
	admin, as := e.login(fullKey)
	res, b := e.do(req{method: "POST", path: "/v1/api-keys", cookie: admin, csrf: as.CSRFToken, headers: e.browser(),
		json: map[string]any{"name": "ops", "permission": "full"}})
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("create key: %d %s", res.StatusCode, b)
	}
	var created struct{ ID, Key string }
	decode(t, b, &created)
	cookie, s := e.login(created.Key)
	if s.KeyID != created.ID {
		t.Fatalf("the session is of key %s, want %s", s.KeyID, created.ID)
	}
	if res, _ := e.do(req{method: "GET", path: "/v1/emails", cookie: cookie, csrf: s.CSRFToken, headers: e.browser()}); res.StatusCode != http.StatusOK {
		t.Fatalf("before revocation: %d", res.StatusCode)
	}
	if res, b := e.do(req{method: "DELETE", path: "/v1/api-keys/" + created.ID, cookie: admin, csrf: as.CSRFToken, headers: e.browser()}); res.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %d %s", res.StatusCode, b)
	}
	e.wantNoSession(t, "with the revoked key's session", cookie, s.CSRFToken)
	if n, _ := e.p.Redis.Exists(t.Context(), redisKey(cookie)).Result(); n != 0 {
		t.Error("the revoked key's session record is still there")
	}
	if res, _ := e.do(req{method: "GET", path: "/v1/emails", cookie: admin, csrf: as.CSRFToken, headers: e.browser()}); res.StatusCode != http.StatusOK {
		t.Errorf("the other key's session after the revocation: %d, want 200", res.StatusCode)
	}
}

// The cookie is Secure (and __Host-) over TLS, or when the dashboard is
// told it is behind TLS; not over plain HTTP (a browser would drop it).
func TestSessionCookieSecureBehindTLS(t *testing.T) {
	for _, tc := range []struct {
		name   string
		o      envOptions
		secure bool
	}{
		{"plain HTTP", envOptions{}, false},
		{"TLS", envOptions{tls: true}, true},
		{"plain HTTP behind a TLS proxy", envOptions{secure: true}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.o)
			cookie, s := e.login(fullKey)
			wantName := map[bool]string{false: "pp_session", true: "__Host-pp_session"}[tc.secure]
			if cookie.Secure != tc.secure || cookie.Name != wantName || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode {
				t.Errorf("cookie %+v, want %s with Secure=%v, HttpOnly, SameSite=Strict", cookie, wantName, tc.secure)
			}
			if res, b := e.do(req{method: "GET", path: "/v1/api-keys", cookie: cookie, csrf: s.CSRFToken, headers: e.browser()}); res.StatusCode != http.StatusOK {
				t.Errorf("the REST API with the cookie: %d %s", res.StatusCode, b)
			}
		})
	}
}

// A key that may only send cannot open the dashboard, and is told why; a
// bad key is a 401; neither gets a cookie.
func TestSessionRefusesSendingOnlyKey(t *testing.T) {
	e := newEnv(t, envOptions{})
	admin, as := e.login(fullKey)
	res, b := e.do(req{method: "POST", path: "/v1/api-keys", cookie: admin, csrf: as.CSRFToken, headers: e.browser(),
		json: map[string]any{"name": "app", "permission": "sending"}})
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("create key: %d %s", res.StatusCode, b)
	}
	var created struct{ Key string }
	decode(t, b, &created)

	res, b = e.do(req{method: "POST", path: "/dashboard/login", headers: e.browser(), form: url.Values{"key": {created.Key}}})
	if res.StatusCode != http.StatusForbidden || !strings.Contains(string(b), "full permission") || sessionCookie(res) != nil {
		t.Errorf("login with a sending-only key: %d %s cookie %v, want 403 naming full permission, no cookie", res.StatusCode, b, sessionCookie(res))
	}
	res, b = e.do(req{method: "POST", path: "/dashboard/login", headers: e.browser(), form: url.Values{"key": {"sp_live_nosuchkey0000000000000000000"}}})
	if res.StatusCode != http.StatusUnauthorized || sessionCookie(res) != nil {
		t.Errorf("login with an unknown key: %d %s, want 401 and no cookie", res.StatusCode, b)
	}
	res, _ = e.do(req{method: "POST", path: "/dashboard/login", headers: e.browser(), form: url.Values{}})
	if res.StatusCode != http.StatusBadRequest {
		t.Errorf("login without a key: %d, want 400", res.StatusCode)
	}
}

// A state-changing request needs the session's CSRF token and must come
// from the dashboard's origin. The cookie alone authenticates nothing: a
// cross-site form (which can carry no header) cannot ride it.
func TestCSRF(t *testing.T) {
	e := newEnv(t, envOptions{})
	cookie, s := e.login(fullKey)
	_, so := e.login(fullKey) // another session of the same key: its token is not this one's
	domain := func(name string) req {
		return req{method: "POST", path: "/v1/domains", cookie: cookie, json: map[string]any{"name": name}}
	}
	with := func(r req, csrf string, headers map[string]string) req {
		r.csrf, r.headers = csrf, headers
		return r
	}
	for _, tc := range []struct {
		name string
		r    req
		code int
	}{
		{"no token", with(domain("a.test"), "", e.browser()), http.StatusUnauthorized},
		{"wrong token", with(domain("b.test"), s.CSRFToken[:len(s.CSRFToken)-1]+"x", e.browser()), http.StatusForbidden},
		{"another session's token", with(domain("c.test"), so.CSRFToken, e.browser()), http.StatusForbidden},
		{"cross-site Origin", with(domain("d.test"), s.CSRFToken, map[string]string{"Origin": "https://evil.test"}), http.StatusForbidden},
		{"Origin null", with(domain("e.test"), s.CSRFToken, map[string]string{"Origin": "null"}), http.StatusForbidden},
		{"Sec-Fetch-Site cross-site", with(domain("f.test"), s.CSRFToken, map[string]string{"Sec-Fetch-Site": "cross-site"}), http.StatusForbidden},
		{"Sec-Fetch-Site same-site", with(domain("g.test"), s.CSRFToken, map[string]string{"Sec-Fetch-Site": "same-site"}), http.StatusForbidden},
		{"forged cross-site form", req{method: "POST", path: "/v1/domains", cookie: cookie, form: url.Values{"name": {"h.test"}},
			headers: map[string]string{"Origin": "https://evil.test", "Sec-Fetch-Site": "cross-site"}}, http.StatusUnauthorized},
		{"forged cross-site logout", req{method: "POST", path: "/dashboard/logout", cookie: cookie,
			headers: map[string]string{"Origin": "https://evil.test", "Sec-Fetch-Site": "cross-site"}, form: url.Values{"csrf": {s.CSRFToken}}}, http.StatusForbidden},
		{"cross-site login", req{method: "POST", path: "/dashboard/login",
			headers: map[string]string{"Origin": "https://evil.test", "Sec-Fetch-Site": "cross-site"}, form: url.Values{"key": {fullKey}}}, http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, b := e.do(tc.r)
			if res.StatusCode != tc.code {
				t.Errorf("%d %s, want %d", res.StatusCode, b, tc.code)
			}
			if sessionCookie(res) != nil {
				t.Errorf("a refused request set a cookie: %v", res.Header["Set-Cookie"])
			}
		})
	}
	var list struct{ Data []struct{ Name string } }
	res, b := e.do(req{method: "GET", path: "/v1/domains", cookie: cookie, csrf: s.CSRFToken, headers: e.browser()})
	decode(t, b, &list)
	if res.StatusCode != http.StatusOK || len(list.Data) != 0 {
		t.Errorf("domains after the refused requests: %d %+v, want none", res.StatusCode, list.Data)
	}
	if res, _ := e.do(req{method: "GET", path: "/dashboard/session", cookie: cookie, headers: e.browser()}); res.StatusCode != http.StatusOK {
		t.Errorf("the session after a forged logout: %d, want still open", res.StatusCode)
	}
	if res, b := e.do(with(domain("ok.test"), s.CSRFToken, e.browser())); res.StatusCode != http.StatusCreated {
		t.Errorf("the same request with the token from the dashboard's origin: %d %s, want 201", res.StatusCode, b)
	}
}

// wantNoSession checks that cookie (with its CSRF token) opens no session:
// the REST API answers 401, GET /dashboard/session 204 (the app then shows
// the login form).
func (e *env) wantNoSession(t *testing.T, when string, cookie *http.Cookie, csrf string) {
	t.Helper()
	if res, b := e.do(req{method: "GET", path: "/v1/emails", cookie: cookie, csrf: csrf, headers: e.browser()}); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /v1/emails %s: %d %s, want 401", when, res.StatusCode, b)
	}
	if res, b := e.do(req{method: "GET", path: "/dashboard/session", cookie: cookie, headers: e.browser()}); res.StatusCode != http.StatusNoContent {
		t.Errorf("GET /dashboard/session %s: %d %s, want 204 (no session)", when, res.StatusCode, b)
	}
}

// Failed logins count towards the address's lockout, as bad keys on the
// REST API and SMTP AUTH do: guessing keys through the login form is no
// faster. Once locked, even the right key is refused, with Retry-After.
func TestLoginLockout(t *testing.T) {
	e := newEnv(t, envOptions{lockOut: true})
	bad := url.Values{"key": {"sp_live_guess000000000000000000000000"}}
	var res *http.Response
	for i := range 25 {
		res, _ = e.do(req{method: "POST", path: "/dashboard/login", headers: e.browser(), form: bad})
		if res.StatusCode == http.StatusTooManyRequests {
			t.Logf("locked out after %d failures", i)
			break
		}
		if res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("failed login %d: %d, want 401", i+1, res.StatusCode)
		}
	}
	if res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("25 failed logins, still %d: no lockout", res.StatusCode)
	}
	res, b := e.do(req{method: "POST", path: "/dashboard/login", headers: e.browser(), form: url.Values{"key": {fullKey}}})
	if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" || sessionCookie(res) != nil {
		t.Errorf("the right key from the locked-out address: %d %s Retry-After %q, want 429 with Retry-After and no cookie",
			res.StatusCode, b, res.Header.Get("Retry-After"))
	}
}

// A session unused for the idle timeout ends, long before its lifetime;
// each use moves the deadline on (to a minute: uses are recorded at most
// once a minute), and the ended session's record goes.
func TestSessionIdleTimeout(t *testing.T) {
	const idle = 10 * time.Minute
	e := newEnv(t, envOptions{idle: idle})
	cookie, s := e.login(fullKey)
	use := func(when string) {
		t.Helper()
		if res, b := e.do(req{method: "GET", path: "/v1/api-keys", cookie: cookie, csrf: s.CSRFToken, headers: e.browser()}); res.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s, want 200", when, res.StatusCode, b)
		}
	}
	// Used every 8 minutes for 40 minutes: four idle timeouts after the
	// login, the session lives on.
	for i := range 5 {
		e.clock.Add(8 * time.Minute)
		use("used after 8 minutes, time " + strconv.Itoa(i+1))
	}
	// A use within the minute is not written; the deadline is the last
	// one recorded plus idle.
	e.clock.Add(30 * time.Second)
	use("30 s later")
	e.clock.Add(idle - 30*time.Second - time.Second)
	use("a second before the idle timeout")
	e.clock.Add(idle)
	e.wantNoSession(t, "unused for the idle timeout", cookie, s.CSRFToken)
	if n, _ := e.p.Redis.Exists(t.Context(), redisKey(cookie)).Result(); n != 0 {
		t.Error("the idle session's Redis record is still there")
	}
	if !e.clock.Now().Before(s.ExpiresAt) {
		t.Fatal("the test ran past the session's lifetime: it proves nothing of the idle timeout")
	}

	// Left alone after the login, a session ends at the idle timeout.
	cookie, s = e.login(fullKey)
	e.clock.Add(idle - time.Second)
	use("a second before the idle timeout of a fresh session")
	cookie2, s2 := e.login(fullKey)
	e.clock.Add(idle)
	e.wantNoSession(t, "a fresh session unused for the idle timeout", cookie2, s2.CSRFToken)
}
