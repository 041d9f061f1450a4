// Package api is pigeonpost's REST surface, the thin sibling of smtpd: it
// decodes JSON, calls the pipeline and encodes JSON. Errors become
// {"error": {"code", "message"}} in one place (writeError).
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// Options configure the handler.
type Options struct {
	MaxBodyBytes int64
	// Metrics is served at /metrics when set.
	Metrics http.Handler
	// Ready reports problems that make the server not ready (e.g. Redis
	// durability in strict mode); nil means none.
	Ready  func(ctx context.Context) []string
	Now    func() time.Time
	Logger *slog.Logger
}

// Handler returns the HTTP handler of the REST API, tracking endpoints,
// health and metrics.
func Handler(svc *pipeline.Service, opt Options) http.Handler {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	h := &handler{svc: svc, opt: opt}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/emails", h.auth(h.sendEmail))
	mux.HandleFunc("GET /v1/emails", h.auth(h.listEmails))
	mux.HandleFunc("GET /v1/emails/{id}", h.auth(h.getEmail))
	mux.HandleFunc("GET /v1/emails/{id}/content", h.auth(h.getEmailContent))
	mux.HandleFunc("GET /v1/emails/{id}/events", h.auth(h.getEmailEvents))
	mux.HandleFunc("POST /v1/emails/batch", h.auth(h.sendBatch))
	mux.HandleFunc("DELETE /v1/emails/{id}/schedule", h.auth(h.cancelSchedule))
	mux.HandleFunc("GET /v1/templates", h.auth(h.listTemplates))
	mux.HandleFunc("POST /v1/templates", h.auth(h.createTemplate))
	mux.HandleFunc("GET /v1/templates/{id}", h.auth(h.getTemplate))
	mux.HandleFunc("PATCH /v1/templates/{id}", h.auth(h.updateTemplate))
	mux.HandleFunc("DELETE /v1/templates/{id}", h.auth(h.deleteTemplate))
	mux.HandleFunc("GET /v1/suppressions", h.auth(h.listSuppressions))
	mux.HandleFunc("POST /v1/suppressions", h.auth(h.createSuppression))
	mux.HandleFunc("DELETE /v1/suppressions/{email}", h.auth(h.deleteSuppression))
	mux.HandleFunc("GET /v1/domains", h.auth(h.listDomains))
	mux.HandleFunc("POST /v1/domains", h.auth(h.createDomain))
	mux.HandleFunc("GET /v1/domains/{id}", h.auth(h.getDomain))
	mux.HandleFunc("POST /v1/domains/{id}/verify", h.auth(h.verifyDomain))
	mux.HandleFunc("DELETE /v1/domains/{id}", h.auth(h.deleteDomain))
	mux.HandleFunc("GET /v1/api-keys", h.auth(h.listKeys))
	mux.HandleFunc("POST /v1/api-keys", h.auth(h.createKey))
	mux.HandleFunc("DELETE /v1/api-keys/{id}", h.auth(h.deleteKey))
	mux.HandleFunc("GET /v1/tracking/defaults", h.auth(h.getTrackingDefaults))
	mux.HandleFunc("PATCH /v1/tracking/defaults", h.auth(h.patchTrackingDefaults))
	mux.HandleFunc("GET /v1/domains/{id}/tracking", h.auth(h.getDomainTracking))
	mux.HandleFunc("PUT /v1/domains/{id}/tracking", h.auth(h.putDomainTracking))
	mux.HandleFunc("POST /v1/domains/{id}/tracking/set-domain", h.auth(h.setTrackingDomain))
	mux.HandleFunc("POST /v1/domains/{id}/tracking/verify", h.auth(h.verifyTrackingDomain))
	mux.HandleFunc("GET /v1/events", h.auth(h.listEvents))
	mux.HandleFunc("POST /v1/webhooks", h.auth(h.createWebhook))
	mux.HandleFunc("GET /v1/webhooks", h.auth(h.listWebhooks))
	mux.HandleFunc("GET /v1/webhooks/failed", h.auth(h.listFailedWebhooks))
	mux.HandleFunc("DELETE /v1/webhooks/{id}", h.auth(h.deleteWebhook))
	mux.HandleFunc("GET /v1/analytics", h.auth(h.getAnalytics))
	mux.HandleFunc("GET /v1/track/open/{emailId}", h.trackOpen)
	mux.HandleFunc("GET /v1/track/click/{trackingId}", h.trackClick)
	mux.HandleFunc("GET /healthz", h.healthz)
	if opt.Metrics != nil {
		mux.Handle("GET /metrics", opt.Metrics)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, pipeline.ErrNotFound("route "+r.Method+" "+r.URL.Path))
	})
	return mux
}

type handler struct {
	svc *pipeline.Service
	opt Options
}

// auth resolves the Bearer key and passes it to next in the context.
func (h *handler) auth(next func(http.ResponseWriter, *http.Request, *store.Key)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		secret, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || strings.TrimSpace(secret) == "" {
			writeError(w, r, &pipeline.Error{HTTPStatus: http.StatusUnauthorized, Code: "unauthorized",
				Message: "missing API key: send Authorization: Bearer <key>"})
			return
		}
		k, err := h.svc.Authenticate(r.Context(), strings.TrimSpace(secret))
		if err != nil {
			writeError(w, r, err)
			return
		}
		h.idempotentPOST(next)(w, r, k)
	}
}

// decode reads a JSON body into v. Unknown fields are accepted (forward
// compatible); a wrong type is a 400 naming the field.
func (h *handler) decode(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opt.MaxBodyBytes))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return &pipeline.Error{HTTPStatus: http.StatusRequestEntityTooLarge, Code: "payload_too_large",
			Message: "request body exceeds the limit"}
	}
	if err != nil {
		return pipeline.ErrInvalid("could not read the request body")
	}
	if err := json.NewDecoder(bytes.NewReader(body)).Decode(v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return pipeline.ErrInvalid(typeErr.Field + ": must be " + jsonType(typeErr.Type.Kind().String()))
		}
		return pipeline.ErrInvalid("the request body is not valid JSON")
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
	b.Error.Code, b.Error.Message = pe.Code, pe.Message
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
