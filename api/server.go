// Package api is pigeonpost's REST surface, the thin sibling of smtpd: it
// decodes JSON, calls the pipeline and encodes JSON. Errors become
// {"error": {"code", "message"}} in one place (writeError).
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/membudget"
	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/account"
	"github.com/pigeonpost/pigeonpost/pipeline/compose"
	"github.com/pigeonpost/pigeonpost/pipeline/contacts"
	"github.com/pigeonpost/pigeonpost/pipeline/engagement"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
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
	Ready  func(ctx context.Context) []string
	Now    func() time.Time
	Logger *slog.Logger
}

// Parts are the services the handlers call; cmd builds them once.
type Parts struct {
	Pipeline   *pipeline.Service   // authentication, idempotency, health
	Account    *account.Service    // keys, domains, suppressions, webhooks, email reads
	Compose    *compose.Service    // sends and templates
	Engagement *engagement.Service // tracking hits, tracking settings, analytics
	Contacts   *contacts.Service   // contacts, their import, segments
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
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, pipeline.NotFound("route "+r.Method+" "+r.URL.Path))
	})
	return mux
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
		{"DELETE /v1/webhooks/{id}", h.auth(h.deleteWebhook)},
		{"GET /v1/analytics", h.auth(h.getAnalytics)},
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

// auth resolves the Bearer key and passes it to next in the context.
func (h *handler) auth(next func(http.ResponseWriter, *http.Request, *store.Key)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		secret, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || strings.TrimSpace(secret) == "" {
			writeError(w, r, pipeline.ErrMissingKey)
			return
		}
		k, err := h.Pipeline.Authenticate(r.Context(), strings.TrimSpace(secret))
		if err != nil {
			writeError(w, r, err)
			return
		}
		res, err := h.reserveBody(r)
		if err != nil {
			h.opt.Logger.Info("request refused: no memory budget in time", "key", k.ID, "declared_size", r.ContentLength)
			writeError(w, r, err)
			return
		}
		defer res.Release()
		h.idempotentPOST(next)(w, r, k)
	}
}

// decode reads a JSON body into v. Unknown fields are accepted (forward
// compatible); a wrong type is a 400 naming the field.
func (h *handler) decode(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := h.readBody(w, r)
	if err != nil {
		return err
	}
	if err := json.NewDecoder(bytes.NewReader(body)).Decode(v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			field := typeErr.Field
			if field == "" {
				field = "body" // e.g. an array where an object is expected
			}
			return pipeline.ErrInvalid.With(field + ": must be " + jsonType(typeErr.Type.Kind().String()))
		}
		return pipeline.ErrInvalid.With("the request body is not valid JSON")
	}
	return nil
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
		slog.Warn("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
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
