package api

import (
	_ "embed"
	"net/http"
)

// openAPI is the OpenAPI 3.1 document of every route in routes(), served
// at GET /v1/openapi.json without authentication. openapi_test.go checks
// that it lists exactly the registered routes; cmd/pigeonpost's
// openapi_test.go sends its examples through the real server.
//
//go:embed openapi.json
var openAPI []byte

func serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(openAPI)
}
