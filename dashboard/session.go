package dashboard

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// CSRFHeader carries a session's CSRF token on every request the dashboard
// makes with its cookie. The REST API takes the cookie only from a request
// with this header (Authenticate): a cross-site page can make a browser send
// the cookie with a plain form, but not add a header without a CORS
// preflight, which nothing here answers.
const CSRFHeader = "X-CSRF-Token"

// csrfField is the form field that may carry the token instead (logout).
const csrfField = "csrf"

// Cookie names: with Secure, the __Host- prefix makes the browser refuse a
// cookie that is not Secure, has a Domain or another Path, so a sibling
// host cannot plant one.
const (
	cookieName       = "pp_session"
	secureCookieName = "__Host-pp_session"
)

// maxLoginBytes bounds the login form: a key and its field name.
const maxLoginBytes = 4 << 10

var (
	errNoSession = pipeline.ErrAuthFailed.With("no dashboard session: log in with an API key")
	errCrossSite = pipeline.ErrForbidden.With("cross-site request refused")
	errBadCSRF   = pipeline.ErrForbidden.With("missing or wrong CSRF token: reload the dashboard")
	errSendOnly  = pipeline.ErrForbidden.With("this API key may only send: log in to the dashboard with a key of full permission")
)

// sessionJSON is what GET /dashboard/session and a login answer: the CSRF
// token the app sends back in CSRFHeader, and whose key it is.
type sessionJSON struct {
	CSRFToken string    `json:"csrfToken"`
	KeyID     string    `json:"keyId"`
	KeyName   string    `json:"keyName"`
	Mode      string    `json:"mode"`
	ExpiresAt time.Time `json:"expiresAt"`
}

func newSessionJSON(s *store.Session, k *store.Key) sessionJSON {
	return sessionJSON{CSRFToken: s.CSRFToken, KeyID: k.ID, KeyName: k.Name, Mode: k.Mode, ExpiresAt: s.ExpiresAt}
}

// login takes the form field "key", an API key of full permission, and
// opens a session: a random token in an HttpOnly cookie, its SHA-256 in
// Redis. A bad key counts as a failed authentication from the client's
// address, as on the REST API and SMTP AUTH (AuthenticateFrom).
func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	if err := checkSameOrigin(r); err != nil {
		writeError(w, r, d.opt.Logger, err)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginBytes)
	if err := r.ParseForm(); err != nil {
		writeError(w, r, d.opt.Logger, pipeline.ErrInvalid.With("the login form cannot be read"))
		return
	}
	secret := strings.TrimSpace(r.PostForm.Get("key"))
	if secret == "" {
		writeError(w, r, d.opt.Logger, pipeline.ErrInvalid.With("key: enter an API key"))
		return
	}
	k, err := d.pipeline.AuthenticateFrom(r.Context(), secret, clientIP(r))
	if err != nil {
		writeError(w, r, d.opt.Logger, err)
		return
	}
	if k.Permission != store.PermissionFull {
		writeError(w, r, d.opt.Logger, errSendOnly)
		return
	}
	token, csrf := randomToken(), randomToken()
	now := d.opt.Now()
	sess := &store.Session{AccountID: k.AccountID, KeyID: k.ID, KeyHash: store.HashKey(pipeline.CanonicalSecret(secret)),
		CSRFToken: csrf, CreatedAt: now, ExpiresAt: now.Add(d.opt.SessionTTL)}
	if err := d.store.CreateSession(r.Context(), tokenHash(token), sess); err != nil {
		writeError(w, r, d.opt.Logger, pipeline.StorageError(err))
		return
	}
	http.SetCookie(w, d.cookie(r, token, sess.ExpiresAt, d.opt.SessionTTL))
	writeJSON(w, http.StatusOK, newSessionJSON(sess, k))
}

// logout ends the request's session and clears its cookie. It needs the
// CSRF token (header or form field): a cross-site page must not log the
// user out either.
func (d *Dashboard) logout(w http.ResponseWriter, r *http.Request) {
	token, sess, _, err := d.session(r)
	if err == nil {
		err = checkCSRF(r, sess, csrfFrom(r))
	}
	if err != nil {
		writeError(w, r, d.opt.Logger, err)
		return
	}
	if err := d.store.DeleteSession(r.Context(), tokenHash(token)); err != nil {
		writeError(w, r, d.opt.Logger, pipeline.StorageError(err))
		return
	}
	http.SetCookie(w, d.cookie(r, "", time.Unix(0, 0), -1))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// getSession answers the request's session with its CSRF token, or 204
// without one: the app asks it on load to know whether to show the login
// form (a 401 there would be an error in the browser's console on every
// visit). Another origin cannot read the answer (no CORS), and the cookie
// is SameSite=Strict.
func (d *Dashboard) getSession(w http.ResponseWriter, r *http.Request) {
	if err := checkSameOrigin(r); err != nil {
		writeError(w, r, d.opt.Logger, err)
		return
	}
	_, sess, k, err := d.session(r)
	if errors.Is(err, errNoSession) {
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if err != nil {
		writeError(w, r, d.opt.Logger, err)
		return
	}
	writeJSON(w, http.StatusOK, newSessionJSON(sess, k))
}

// Authenticate is the REST API's session authenticator (api.Options.Session).
// A request without CSRFHeader carries no session credentials, whatever its
// cookies: nil, nil. With it, the request must come from the dashboard's
// origin, with a live session whose key is still there (looked up through
// the pipeline's cache, which a revocation empties) and still of full
// permission, and with the session's token; it then acts as that key.
func (d *Dashboard) Authenticate(r *http.Request) (*store.Key, error) {
	csrf := r.Header.Get(CSRFHeader)
	if csrf == "" {
		return nil, nil
	}
	if err := checkSameOrigin(r); err != nil {
		return nil, err
	}
	_, sess, k, err := d.session(r)
	if err != nil {
		return nil, err
	}
	if err := checkCSRF(r, sess, csrf); err != nil {
		return nil, err
	}
	return k, nil
}

// session returns the request's session token, the session and its key.
// A session whose key was revoked, or lost its full permission, is ended.
func (d *Dashboard) session(r *http.Request) (string, *store.Session, *store.Key, error) {
	c, err := r.Cookie(d.cookieName(r))
	if err != nil || c.Value == "" {
		return "", nil, nil, errNoSession
	}
	token := c.Value
	sess, err := d.store.SessionByHash(r.Context(), tokenHash(token))
	if errors.Is(err, store.ErrNotFound) {
		return "", nil, nil, errNoSession
	}
	if err != nil {
		return "", nil, nil, pipeline.StorageError(err)
	}
	now := d.opt.Now()
	if !now.Before(sess.ExpiresAt) {
		return "", nil, nil, errNoSession
	}
	if idle := d.opt.IdleTimeout; idle > 0 {
		if !now.Before(sess.SeenAt.Add(idle)) {
			if err := d.store.DeleteSession(r.Context(), tokenHash(token)); err != nil {
				d.opt.Logger.Warn("ending an idle session failed", "key", sess.KeyID, "err", err)
			}
			return "", nil, nil, errNoSession
		}
		// One write a minute at most (less for a short timeout), not one
		// per request: the live views poll every few seconds.
		if now.Sub(sess.SeenAt) >= min(time.Minute, idle/10) {
			if err := d.store.TouchSession(r.Context(), tokenHash(token), now); err != nil {
				return "", nil, nil, pipeline.StorageError(err)
			}
			sess.SeenAt = now
		}
	}
	k, err := d.pipeline.KeyByHash(r.Context(), sess.KeyHash)
	switch {
	case errors.Is(err, pipeline.ErrAuthFailed) || err == nil && (k.ID != sess.KeyID || k.Permission != store.PermissionFull):
		if err := d.store.DeleteSession(r.Context(), tokenHash(token)); err != nil {
			d.opt.Logger.Warn("ending the session of a revoked key failed", "key", sess.KeyID, "err", err)
		}
		return "", nil, nil, errNoSession
	case err != nil:
		return "", nil, nil, err
	}
	return token, sess, k, nil
}

// checkCSRF compares the token the request carries with the session's, in
// constant time.
func checkCSRF(r *http.Request, sess *store.Session, token string) error {
	if err := checkSameOrigin(r); err != nil {
		return err
	}
	if token == "" || subtle.ConstantTimeCompare([]byte(token), []byte(sess.CSRFToken)) != 1 {
		return errBadCSRF
	}
	return nil
}

// csrfFrom is the request's CSRF token: CSRFHeader, or the form field.
func csrfFrom(r *http.Request) string {
	if t := r.Header.Get(CSRFHeader); t != "" {
		return t
	}
	r.Body = http.MaxBytesReader(nil, r.Body, maxLoginBytes)
	if err := r.ParseForm(); err != nil {
		return ""
	}
	return r.PostForm.Get(csrfField)
}

// checkSameOrigin refuses a request a browser says comes from another
// site or origin: Sec-Fetch-Site other than same-origin (or none: typed in
// the address bar), or an Origin whose host is not the request's. A client
// that sends neither header is not a browser acting for someone else (a
// browser sends Origin with every POST): the CSRF token still binds the
// request to the session.
func checkSameOrigin(r *http.Request) error {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return errCrossSite
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || !strings.EqualFold(u.Host, r.Host) {
		return errCrossSite
	}
	if r.TLS != nil && u.Scheme != "https" {
		return errCrossSite
	}
	return nil
}

// secure reports whether the session cookie must be Secure.
func (d *Dashboard) secure(r *http.Request) bool { return r.TLS != nil || d.opt.Secure }

func (d *Dashboard) cookieName(r *http.Request) string {
	if d.secure(r) {
		return secureCookieName
	}
	return cookieName
}

// cookie is the session cookie holding token until expires, maxAge from
// now (negative: delete it).
func (d *Dashboard) cookie(r *http.Request, token string, expires time.Time, maxAge time.Duration) *http.Cookie {
	age := int(maxAge / time.Second)
	if maxAge < 0 {
		age = -1
	}
	return &http.Cookie{
		Name: d.cookieName(r), Value: token, Path: "/", Expires: expires, MaxAge: age,
		HttpOnly: true, Secure: d.secure(r), SameSite: http.SameSiteStrictMode,
	}
}

// randomToken is 32 random bytes, base64url.
func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// tokenHash names a session in Redis: the SHA-256 (hex) of its token.
func tokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// clientIP is the peer address of r (no proxy headers are trusted).
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
