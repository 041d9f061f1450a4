// Package dashboard is the web UI served at / on the HTTP listener: its
// embedded static assets (static/, no build step), the login that turns an
// API key of full permission into a session cookie, the session's CSRF
// checks, and the authenticator (Authenticate) through which the UI's
// requests call the /v1 REST API. It owns "/" and "/dashboard/"; every other
// path goes to the handler it wraps.
package dashboard

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

//go:embed static
var staticFiles embed.FS

// assets are the files under static/, served at /dashboard/assets/.
var assets, _ = fs.Sub(staticFiles, "static")

// DefaultSessionTTL is how long a session lasts when Options.SessionTTL is 0.
const DefaultSessionTTL = 12 * time.Hour

// DefaultIdleTimeout is how long a session may go unused when
// Options.IdleTimeout is 0.
const DefaultIdleTimeout = 30 * time.Minute

// Options configure the dashboard.
type Options struct {
	// SessionTTL is how long a login lasts; 0 means DefaultSessionTTL.
	SessionTTL time.Duration
	// IdleTimeout ends a session unused for this long, before SessionTTL:
	// 0 means DefaultIdleTimeout, a negative value none. A page left open
	// keeps its session: its views poll while the tab is visible.
	IdleTimeout time.Duration
	// Secure marks the session cookie Secure (and names it with the
	// __Host- prefix) even for a request that did not come over TLS: the
	// listener is behind a proxy that terminates TLS (http.public_url is
	// https://). A request over TLS always gets a Secure cookie.
	Secure bool
	Now    func() time.Time
	Logger *slog.Logger
}

// Dashboard serves the UI and its sessions.
type Dashboard struct {
	pipeline *pipeline.Service
	store    *store.Store
	opt      Options
	mux      *http.ServeMux
}

// New returns the dashboard over the pipeline's key lookup and the store
// that keeps its sessions.
func New(p *pipeline.Service, st *store.Store, opt Options) *Dashboard {
	if opt.SessionTTL <= 0 {
		opt.SessionTTL = DefaultSessionTTL
	}
	if opt.IdleTimeout == 0 {
		opt.IdleTimeout = DefaultIdleTimeout
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	d := &Dashboard{pipeline: p, store: st, opt: opt, mux: http.NewServeMux()}
	d.mux.HandleFunc("GET /{$}", d.index)
	d.mux.Handle("GET /dashboard/assets/", http.StripPrefix("/dashboard/assets/", noListing(withETag(http.FileServerFS(assets)))))
	d.mux.HandleFunc("GET /dashboard/session", d.getSession)
	d.mux.HandleFunc("POST /dashboard/login", d.login)
	d.mux.HandleFunc("POST /dashboard/logout", d.logout)
	d.mux.HandleFunc("/dashboard/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, d.opt.Logger, pipeline.NotFound("route "+r.Method+" "+r.URL.Path))
	})
	return d
}

// Handler serves the dashboard at "/" and under "/dashboard/", and passes
// every other request to next (the REST API).
func (d *Dashboard) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" && !strings.HasPrefix(r.URL.Path, "/dashboard/") {
			next.ServeHTTP(w, r)
			return
		}
		setSecurityHeaders(w.Header())
		d.mux.ServeHTTP(w, r)
	})
}

// contentSecurityPolicy is the dashboard's CSP. Scripts only from the
// dashboard's own files: no inline script, no eval. Styles may be inline
// and images remote because the email preview (an iframe with srcdoc,
// sandbox="") inherits this policy and can only narrow it: its own policy
// blocks remote images until the user asks for them, and the sandbox runs
// no script at all.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data: https: http:; font-src 'self'; connect-src 'self'; form-action 'self'; " +
	"base-uri 'none'; frame-ancestors 'none'"

// setSecurityHeaders sets the headers every dashboard response carries.
func setSecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Cache-Control", "no-cache")
}

// index serves the single page; the app routes with the URL's fragment.
func (d *Dashboard) index(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("ETag", etags["index.html"])
	http.ServeFileFS(w, r, assets, "index.html")
}

// etags are the strong validators of the assets, by path under static/: a
// hash of their bytes. Embedded files have no modification time, so
// without them every visit would download every file again; with them a
// revalidation (Cache-Control: no-cache) is a 304.
var etags = func() map[string]string {
	m := map[string]string{}
	_ = fs.WalkDir(assets, ".", func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := fs.ReadFile(assets, path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		m[path] = `"` + hex.EncodeToString(sum[:16]) + `"`
		return nil
	})
	return m
}()

// withETag sets the asset's ETag, which http.FileServerFS then honours
// (If-None-Match answers 304).
func withETag(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tag, ok := etags[r.URL.Path]; ok {
			w.Header().Set("ETag", tag)
		}
		next.ServeHTTP(w, r)
	})
}

// noListing answers 404 for a directory, which http.FileServerFS would list.
func noListing(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "" || r.URL.Path[len(r.URL.Path)-1] == '/' {
			http.NotFound(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// writeJSON answers v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers err as the REST API does ({"error":{"code","message"}}):
// an error that is not a *pipeline.Error is a storage failure, 503.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	pe := pipeline.AsError(err)
	if pe.HTTPStatus >= 500 {
		log.Warn("dashboard request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if pe.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((pe.RetryAfter+time.Second-1)/time.Second)))
	}
	var b struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	b.Error.Code, b.Error.Message = string(pe.Code), pe.Message
	writeJSON(w, pe.HTTPStatus, b)
}
