// Package api is pigeonpost's REST surface, the thin sibling of smtpd: it
// decodes JSON, calls the pipeline and encodes JSON. Errors become
// {"error": {"code", "message"}} in one place (writeError).
package api

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/membudget"
	"github.com/pigeonpost/pigeonpost/internal/strictjson"
	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/account"
	"github.com/pigeonpost/pigeonpost/pipeline/compose"
	"github.com/pigeonpost/pigeonpost/pipeline/contacts"
	"github.com/pigeonpost/pigeonpost/pipeline/engagement"
	"github.com/pigeonpost/pigeonpost/pipeline/feedback"
	"github.com/pigeonpost/pigeonpost/pipeline/reputation"
	"github.com/pigeonpost/pigeonpost/pipeline/sends"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
	"github.com/pigeonpost/pigeonpost/pipeline/webhooks"
)

// Options configure the handler.
type Options struct {
	MaxBodyBytes int64
	// MaxImportBytes caps the body of POST /v1/contacts/import, which is
	// streamed (budget.go: streamedRoutes); 0 means DefaultMaxImportBytes.
	MaxImportBytes int64
	// Budget is the process's message memory (smtp.data_memory_bytes),
	// shared with smtpd: a request with a large body holds its share while
	// it runs (budget.go). Nil: unbounded.
	Budget *membudget.Budget
	// BudgetWait is how long a request waits for its share before it is
	// answered 503 server_busy; 0 means 30 s.
	BudgetWait time.Duration
	// Metrics is served at /metrics when set.
	Metrics http.Handler
	// Ready reports problems that make the server not ready (e.g. Redis
	// durability in strict mode); nil means none.
	Ready func(ctx context.Context) []string
	// Session authenticates a request that carries no API key: the
	// dashboard's session cookie with its CSRF header (dashboard.Sessions).
	// It returns the session's key, nil when the request carries no
	// session credentials (it is then 401 missing key), or the error to
	// answer. Nil: API keys only.
	Session func(*http.Request) (*store.Key, error)
	Now     func() time.Time
	Logger  *slog.Logger
}

// Parts are the services the handlers call; cmd builds them once.
type Parts struct {
	Pipeline   *pipeline.Service   // authentication, idempotency, health
	Account    *account.Service    // keys, domains, suppressions, webhooks, email reads
	Compose    *compose.Service    // sends and templates
	Engagement *engagement.Service // tracking hits, tracking settings, analytics
	Contacts   *contacts.Service   // contacts, their import, segments
	Sends      *sends.Service      // sends of templates to contacts, batches, unsubscribe
	Reputation *reputation.Guard   // the account's pause and its figures
	Feedback   *feedback.Service   // complaints and late bounces
	Webhooks   *webhooks.Replayer  // webhook replays and redeliveries
	// Destinations lists what traffic shaping suspended or limited
	// (pipeline/store; the operator's API).
	Destinations DestinationLister
}

// DestinationLister lists the destinations suspended or limited in the
// last `within` before now (store.Store).
type DestinationLister interface {
	ListDestinations(ctx context.Context, now time.Time, within time.Duration, limit int) ([]store.DestinationState, error)
}

// Handler returns the HTTP handler of the REST API, tracking endpoints,
// health and metrics.
func Handler(p Parts, opt Options) http.Handler {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	h := &handler{Parts: p, opt: opt}
	mux := http.NewServeMux()
	for _, rt := range h.routes() {
		mux.Handle(rt.pattern, rt.handler)
	}
	mux.HandleFunc(fallbackPattern, routeNotFound)
	return withLogger(opt.Logger, withAPIAlias(mux))
}

type loggerKey struct{}

// withLogger gives next's requests the handler's logger, which writeError
// (a function, called from every handler) logs failures with: the
// configured one, in its format and level, not slog's default.
func withLogger(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), loggerKey{}, log)))
	})
}

// requestLogger is the logger of r's handler (withLogger).
func requestLogger(r *http.Request) *slog.Logger {
	if l, ok := r.Context().Value(loggerKey{}).(*slog.Logger); ok {
		return l
	}
	return slog.Default()
}

// fallbackPattern matches what no route does: routeNotFound answers it.
const fallbackPattern = "/"

func routeNotFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, r, pipeline.NotFound("route "+r.Method+" "+r.URL.Path))
}

// apiAliasPrefix is where Pigeon Perch's documentation puts the API:
// /api/v1/x is /v1/x.
const apiAliasPrefix = "/api"

// withAPIAlias serves every /v1/… route under /api/v1/… too. The request is
// rewritten before routing (http.StripPrefix), so the handlers see the
// /v1 path and pattern: an Idempotency-Key used on both spellings is one
// key of one route, and a route added to the table has its alias at once.
// An unknown /api/v1 path is the usual JSON 404, naming the path as asked.
func withAPIAlias(mux *http.ServeMux) http.Handler {
	alias := http.StripPrefix(apiAliasPrefix, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern == fallbackPattern {
			r.URL.Path = apiAliasPrefix + r.URL.Path // r is StripPrefix's copy
			routeNotFound(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, apiAliasPrefix+"/v1/") {
			alias.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// route is one entry of the route table: a ServeMux pattern
// ("METHOD /path/{param}") and its handler.
type route struct {
	pattern string
	handler http.Handler
}

// routes is the table of every route Handler registers; the OpenAPI test
// checks it against openapi.json. GET /metrics is there when
// Options.Metrics is set.
func (h *handler) routes() []route {
	rs := []route{
		{"POST /v1/emails", h.auth(h.sendEmail)},
		{"GET /v1/emails", h.auth(h.listEmails)},
		{"GET /v1/emails/{id}", h.auth(h.getEmail)},
		{"GET /v1/emails/{id}/content", h.auth(h.getEmailContent)},
		{"GET /v1/emails/{id}/events", h.auth(h.getEmailEvents)},
		{"POST /v1/emails/batch", h.auth(h.sendBatch)},
		{"POST /v1/emails/preview", h.auth(h.previewEmail)},
		{"DELETE /v1/emails/{id}/schedule", h.auth(h.cancelSchedule)},
		{"GET /v1/templates", h.auth(h.listTemplates)},
		{"POST /v1/templates", h.auth(h.createTemplate)},
		{"GET /v1/templates/{id}", h.auth(h.getTemplate)},
		{"PATCH /v1/templates/{id}", h.auth(h.updateTemplate)},
		{"DELETE /v1/templates/{id}", h.auth(h.deleteTemplate)},
		{"GET /v1/contacts", h.auth(h.listContacts)},
		{"POST /v1/contacts", h.auth(h.createContact)},
		{"POST /v1/contacts/import", h.auth(h.importContacts)},
		{"GET /v1/contacts/{id}", h.auth(h.getContact)},
		{"PATCH /v1/contacts/{id}", h.auth(h.updateContact)},
		{"DELETE /v1/contacts/{id}", h.auth(h.deleteContact)},
		{"GET /v1/segments", h.auth(h.listSegments)},
		{"POST /v1/segments", h.auth(h.createSegment)},
		{"GET /v1/segments/{id}", h.auth(h.getSegment)},
		{"PATCH /v1/segments/{id}", h.auth(h.updateSegment)},
		{"DELETE /v1/segments/{id}", h.auth(h.deleteSegment)},
		{"GET /v1/suppressions", h.auth(h.listSuppressions)},
		{"POST /v1/suppressions", h.auth(h.createSuppression)},
		{"DELETE /v1/suppressions/{email}", h.auth(h.deleteSuppression)},
		{"GET /v1/domains", h.auth(h.listDomains)},
		{"POST /v1/domains", h.auth(h.createDomain)},
		{"GET /v1/domains/{id}", h.auth(h.getDomain)},
		{"POST /v1/domains/{id}/verify", h.auth(h.verifyDomain)},
		{"DELETE /v1/domains/{id}", h.auth(h.deleteDomain)},
		{"GET /v1/api-keys", h.auth(h.listKeys)},
		{"POST /v1/api-keys", h.auth(h.createKey)},
		{"DELETE /v1/api-keys/{id}", h.auth(h.deleteKey)},
		{"GET /v1/tracking/defaults", h.auth(h.getTrackingDefaults)},
		{"PATCH /v1/tracking/defaults", h.auth(h.patchTrackingDefaults)},
		{"GET /v1/domains/{id}/tracking", h.auth(h.getDomainTracking)},
		{"PUT /v1/domains/{id}/tracking", h.auth(h.putDomainTracking)},
		{"POST /v1/domains/{id}/tracking/set-domain", h.auth(h.setTrackingDomain)},
		{"POST /v1/domains/{id}/tracking/verify", h.auth(h.verifyTrackingDomain)},
		{"GET /v1/events", h.auth(h.listEvents)},
		{"POST /v1/webhooks", h.auth(h.createWebhook)},
		{"GET /v1/webhooks", h.auth(h.listWebhooks)},
		{"GET /v1/webhooks/failed", h.auth(h.listFailedWebhooks)},
		{"GET /v1/webhooks/{id}/deliveries", h.auth(h.listWebhookDeliveries)},
		{"DELETE /v1/webhooks/{id}", h.auth(h.deleteWebhook)},
		{"POST /v1/webhooks/{id}/replay", h.auth(h.replayWebhook)},
		{"POST /v1/webhooks/deliveries/{id}/redeliver", h.auth(h.redeliverWebhook)},
		{"GET /v1/analytics", h.auth(h.getAnalytics)},
		{"GET /v1/usage", h.auth(h.getUsage)},
		{"GET /v1/reputation", h.auth(h.getReputation)},
		{"POST /v1/inbound/fbl", h.auth(h.receiveReport)},
		{"POST /v1/inbound/bounces", h.auth(h.receiveReport)},
		{"POST /v1/sends", h.auth(h.createSend)},
		{"POST /v1/sends/batch", h.auth(h.createSendBatch)},
		{"GET /v1/sends", h.auth(h.listSends)},
		{"GET /v1/sends/{id}", h.auth(h.getSend)},
		{"GET /v1/batches/{id}", h.auth(h.getBatch)},
		{"GET /v1/unsubscribe/{id}", http.HandlerFunc(h.unsubscribePage)},
		{"POST /v1/unsubscribe/{id}", http.HandlerFunc(h.unsubscribe)},
		{"GET /v1/track/open/{emailId}", http.HandlerFunc(h.trackOpen)},
		{"GET /v1/track/click/{trackingId}", http.HandlerFunc(h.trackClick)},
		{"GET /healthz", http.HandlerFunc(h.healthz)},
		{"GET /v1/openapi.json", http.HandlerFunc(serveOpenAPI)},
	}
	if h.opt.Metrics != nil {
		rs = append(rs, route{"GET /metrics", h.opt.Metrics})
	}
	return rs
}

// Routes lists the pattern ("METHOD /path/{param}") of every route Handler
// registers, GET /metrics included.
func Routes() []string {
	h := &handler{opt: Options{Metrics: http.NotFoundHandler()}}
	var out []string
	for _, rt := range h.routes() {
		out = append(out, rt.pattern)
	}
	return out
}

// handler is the REST surface over the parts: a new route is a line of
// routes and a method here, calling one part.
type handler struct {
	Parts
	opt Options
}

// auth resolves the request's key (requestKey) and passes it to next.
func (h *handler) auth(next func(http.ResponseWriter, *http.Request, *store.Key)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		k, err := h.authenticate(r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		r, res := h.budgetBody(r, k)
		defer res.Release()
		h.idempotentPOST(next)(w, r, k)
	}
}

// authenticate returns the key of r's API key (requestKey) or, without
// one, of its dashboard session (Options.Session).
func (h *handler) authenticate(r *http.Request) (*store.Key, error) {
	secret, err := requestKey(r)
	if errors.Is(err, pipeline.ErrMissingKey) && h.opt.Session != nil {
		k, serr := h.opt.Session(r)
		if serr != nil || k != nil {
			return k, serr
		}
	}
	if err != nil {
		return nil, err
	}
	return h.Pipeline.AuthenticateFrom(r.Context(), secret, clientIP(r))
}

// requestKey returns the API key of r: Authorization: Bearer <key>
// (SendPigeon) or X-API-Key: <key> (Pigeon Perch). An Authorization header
// of another scheme carries no key. Both headers with keys that differ are
// refused with 401, as bad credentials are: which key the caller meant
// cannot be told, and picking one could act on the wrong account. Two
// spellings of one key (pp_live_X, sp_live_X) agree.
func requestKey(r *http.Request) (string, error) {
	bearer := ""
	if v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		bearer = strings.TrimSpace(v)
	}
	header := strings.TrimSpace(r.Header.Get("X-API-Key"))
	switch {
	case bearer == "" && header == "":
		return "", pipeline.ErrMissingKey
	case bearer == "":
		return header, nil
	case header != "" && subtle.ConstantTimeCompare([]byte(pipeline.CanonicalSecret(header)), []byte(pipeline.CanonicalSecret(bearer))) != 1:
		return "", pipeline.ErrAuthFailed.With("the Authorization and X-API-Key headers carry different API keys: send one")
	}
	return bearer, nil
}

// decode reads a JSON body into v strictly: a field v does not know is a
// 400 naming it (strict.go), a wrong type a 400 naming the field.
func (h *handler) decode(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := h.readBody(w, r)
	if err != nil {
		return err
	}
	if err := checkShape(body); err != nil {
		return err
	}
	if err := strictDecoder(body).Decode(v); err != nil {
		if strictjson.IsUnknownField(err) {
			return unknownFieldError(body, v, "")
		}
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			field := fieldPath(typeErr)
			if field == "" {
				field = "body" // e.g. an array where an object is expected
			}
			return pipeline.ErrInvalid.With(field + ": must be " + jsonType(typeErr.Type.Kind().String()))
		}
		return pipeline.ErrInvalid.With("the request body is not valid JSON")
	}
	return nil
}

// strictDecoder decodes b refusing fields the target does not know.
func strictDecoder(b []byte) *json.Decoder {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	return d
}

// fieldPath is the JSON path of a value of the wrong type. encoding/json
// also names the embedded structs it went through ("sendMessageJSON.from"),
// which are no part of the client's JSON: api's request types that are
// embedded are named …JSON, and no JSON field is.
func fieldPath(e *json.UnmarshalTypeError) string {
	parts := strings.Split(e.Field, ".")
	out := parts[:0]
	for _, p := range parts {
		if !strings.HasSuffix(p, "JSON") {
			out = append(out, p)
		}
	}
	return strings.Join(out, ".")
}

func jsonType(kind string) string {
	switch kind {
	case "slice", "array":
		return "an array"
	case "map", "struct", "ptr":
		return "an object"
	case "bool":
		return "a boolean"
	case "string":
		return "a string"
	}
	return "a number"
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// writeError is the one place where errors become HTTP responses. Unknown
// errors are storage failures: 503, nothing stored, retry.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	pe := pipeline.AsError(err)
	if pe.HTTPStatus >= 500 {
		requestLogger(r).Warn("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if pe.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((pe.RetryAfter+time.Second-1)/time.Second)))
	}
	var b errorBody
	b.Error.Code, b.Error.Message = string(pe.Code), pe.Message
	writeJSON(w, pe.HTTPStatus, b)
}

// clientIP is the peer address of r (no proxy headers are trusted).
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
