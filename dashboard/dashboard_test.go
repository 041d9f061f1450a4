package dashboard_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/api"
	"github.com/pigeonpost/pigeonpost/dashboard"
	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/pipelinetest"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// The dashboard's tests run it the way cmd/pigeonpost does: wrapping the
// REST API, over the pipeline's parts on a test Redis, in an httptest
// server. Requests set Origin and Sec-Fetch-Site as a browser would.

const (
	fullKey = "sp_live_dashboardtestkey00000000000001"
	ttl     = 2 * time.Hour
)

// clock is a settable Now for the dashboard.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type env struct {
	t      *testing.T
	p      *pipelinetest.Parts
	srv    *httptest.Server
	clock  *clock
	origin string // the server's own origin
}

type envOptions struct {
	tls    bool
	secure bool // dashboard.Options.Secure
	// lockOut: failed logins from 127.0.0.1 lock it out, as they would
	// from a public address (pipeline.Options.LockOutPrivate).
	lockOut bool
	// idle is dashboard.Options.IdleTimeout; 0: none, so that the tests
	// of other things may let the clock run.
	idle time.Duration
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	p := pipelinetest.New(t, pipelinetest.Options{Pipeline: pipeline.Options{LockOutPrivate: o.lockOut}})
	p.Key(t, "default", fullKey)
	c := &clock{t: time.Now()}
	idle := o.idle
	if idle == 0 {
		idle = -1
	}
	d := dashboard.New(p.Pipeline, p.Store, dashboard.Options{SessionTTL: ttl, IdleTimeout: idle, Secure: o.secure, Now: c.Now})
	h := d.Handler(api.Handler(api.Parts{Pipeline: p.Pipeline, Account: p.Account, Compose: p.Compose, Engagement: p.Engagement,
		Contacts: p.Contacts, Sends: p.Sends, Reputation: p.Reputation, Feedback: p.Feedback, Webhooks: p.Webhooks},
		api.Options{MaxBodyBytes: 1 << 20, Session: d.Authenticate}))
	var srv *httptest.Server
	if o.tls {
		srv = httptest.NewTLSServer(h)
	} else {
		srv = httptest.NewServer(h)
	}
	t.Cleanup(srv.Close)
	return &env{t: t, p: p, srv: srv, clock: c, origin: srv.URL}
}

// req is one request; the zero value of a field leaves it out.
type req struct {
	method, path string
	cookie       *http.Cookie
	csrf         string            // X-CSRF-Token
	headers      map[string]string // e.g. Origin, Sec-Fetch-Site, Authorization
	form         url.Values        // an urlencoded body
	json         any               // a JSON body
}

// browser is the headers a browser sends with a same-origin fetch.
func (e *env) browser() map[string]string {
	return map[string]string{"Origin": e.origin, "Sec-Fetch-Site": "same-origin"}
}

func (e *env) do(r req) (*http.Response, []byte) {
	e.t.Helper()
	var body io.Reader
	ctype := ""
	switch {
	case r.form != nil:
		body, ctype = strings.NewReader(r.form.Encode()), "application/x-www-form-urlencoded"
	case r.json != nil:
		b, err := json.Marshal(r.json)
		if err != nil {
			e.t.Fatal(err)
		}
		body, ctype = strings.NewReader(string(b)), "application/json"
	}
	hr, err := http.NewRequest(r.method, e.srv.URL+r.path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if ctype != "" {
		hr.Header.Set("Content-Type", ctype)
	}
	if r.cookie != nil {
		hr.AddCookie(&http.Cookie{Name: r.cookie.Name, Value: r.cookie.Value})
	}
	if r.csrf != "" {
		hr.Header.Set(dashboard.CSRFHeader, r.csrf)
	}
	for k, v := range r.headers {
		hr.Header.Set(k, v)
	}
	res, err := e.srv.Client().Do(hr)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return res, b
}

// sessionCookie is the session cookie res sets, or nil.
func sessionCookie(res *http.Response) *http.Cookie {
	for _, c := range res.Cookies() {
		if strings.HasSuffix(c.Name, "pp_session") {
			return c
		}
	}
	return nil
}

type session struct {
	CSRFToken string
	KeyID     string
	KeyName   string
	ExpiresAt time.Time
}

// login logs in with key and returns the session cookie and the session.
func (e *env) login(key string) (*http.Cookie, session) {
	e.t.Helper()
	res, b := e.do(req{method: "POST", path: "/dashboard/login", headers: e.browser(), form: url.Values{"key": {key}}})
	if res.StatusCode != http.StatusOK {
		e.t.Fatalf("login: %d %s", res.StatusCode, b)
	}
	c := sessionCookie(res)
	if c == nil {
		e.t.Fatalf("login set no session cookie: %v", res.Header["Set-Cookie"])
	}
	var s session
	if err := json.Unmarshal(b, &s); err != nil || s.CSRFToken == "" {
		e.t.Fatalf("login answered %s (%v)", b, err)
	}
	return c, s
}

// redisKey is the Redis key of the session whose cookie this is.
func redisKey(c *http.Cookie) string {
	sum := sha256.Sum256([]byte(c.Value))
	return store.SessionKey(hex.EncodeToString(sum[:]))
}

func errCode(b []byte) string {
	var e struct {
		Error struct{ Code, Message string }
	}
	_ = json.Unmarshal(b, &e)
	return e.Error.Code
}

func decode(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
}
