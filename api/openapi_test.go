package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// The contract between openapi.json and the route table. That the examples
// and schemas match what the handlers encode is checked over the pipeline's
// parts by openapi_contract_test.go.

var docMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

var routeParam = regexp.MustCompile(`\{[^}/]+\}`)

// normalise makes "GET /v1/emails/{id}" and "get /v1/emails/{emailId}" equal.
func normaliseRoute(method, path string) string {
	return strings.ToUpper(method) + " " + routeParam.ReplaceAllString(path, "{}")
}

func loadOpenAPI(t *testing.T) map[string]any {
	t.Helper()
	var doc map[string]any
	d := json.NewDecoder(bytes.NewReader(openAPI))
	d.UseNumber()
	if err := d.Decode(&doc); err != nil {
		t.Fatalf("openapi.json is not valid JSON: %v", err)
	}
	if d.More() {
		t.Fatal("openapi.json: data after the document")
	}
	return doc
}

// operations returns the document's operations by normalised route.
func docOperations(t *testing.T, doc map[string]any) map[string]map[string]any {
	t.Helper()
	ops := map[string]map[string]any{}
	paths, _ := doc["paths"].(map[string]any)
	if len(paths) == 0 {
		t.Fatal("openapi.json has no paths")
	}
	for path, item := range paths {
		for method, op := range item.(map[string]any) {
			if !slices.Contains(docMethods, method) {
				continue // parameters, summary ...
			}
			ops[normaliseRoute(method, path)] = op.(map[string]any)
		}
	}
	return ops
}

func TestOpenAPIDocument(t *testing.T) {
	doc := loadOpenAPI(t)
	if v, _ := doc["openapi"].(string); !regexp.MustCompile(`^3\.1\.\d+$`).MatchString(v) {
		t.Errorf("openapi is %q, want 3.1.x", v)
	}
	info, _ := doc["info"].(map[string]any)
	if info["title"] == nil || info["version"] == nil {
		t.Errorf("info lacks title or version: %v", info)
	}
	scheme := docDig(doc, "components", "securitySchemes", "bearerAuth")
	if scheme["type"] != "http" || scheme["scheme"] != "bearer" {
		t.Errorf("bearerAuth is %v, want http bearer", scheme)
	}
	key := docDig(doc, "components", "securitySchemes", "apiKeyAuth")
	if key["type"] != "apiKey" || key["in"] != "header" || key["name"] != "X-API-Key" {
		t.Errorf("apiKeyAuth is %v, want the X-API-Key header", key)
	}
	if sec := docJSON(doc["security"]); sec != `[{"bearerAuth":[]},{"apiKeyAuth":[]}]` {
		t.Errorf("security is %s, want bearerAuth or apiKeyAuth for every operation by default", sec)
	}
	errSchema := docJSON(docDig(doc, "components", "schemas", "Error"))
	if !strings.Contains(errSchema, `"required":["error"]`) {
		t.Errorf("the Error schema is not {error: ...}: %s", errSchema)
	}
	if detail := docJSON(docDig(doc, "components", "schemas", "ErrorDetail")); !strings.Contains(detail, `"required":["code","message"]`) {
		t.Errorf("the error detail is not {code, message}: %s", detail)
	}

	// Every $ref resolves.
	var walk func(where string, v any)
	walk = func(where string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if r, ok := v["$ref"].(string); ok {
				if docRef(doc, r) == nil {
					t.Errorf("%s: $ref %s does not resolve", where, r)
				}
			}
			for k, x := range v {
				walk(where+"/"+k, x)
			}
		case []any:
			for _, x := range v {
				walk(where+"[]", x)
			}
		}
	}
	walk("#", doc)

	ids := map[string]string{}
	for route, op := range docOperations(t, doc) {
		id, _ := op["operationId"].(string)
		if id == "" {
			t.Errorf("%s: no operationId", route)
		} else if other, dup := ids[id]; dup {
			t.Errorf("operationId %s is used by %s and %s", id, other, route)
		}
		ids[id] = route
		checkOperation(t, doc, route, op)
	}
}

// checkOperation checks one operation's parameters, success response and examples.
func checkOperation(t *testing.T, doc map[string]any, route string, op map[string]any) {
	t.Helper()
	_, path, _ := strings.Cut(route, " ")
	var params []string
	for _, p := range docList(op["parameters"]) {
		p := docDeref(doc, p)
		if p["in"] == "path" {
			params = append(params, p["name"].(string))
			if p["required"] != true {
				t.Errorf("%s: path parameter %v is not required", route, p["name"])
			}
		}
	}
	// The path of route is normalised; find the document's own spelling.
	var docPath string
	for p := range docDig(doc, "paths") {
		if normaliseRoute("", p) == normaliseRoute("", path) {
			docPath = p
		}
	}
	var inPath []string
	for _, m := range routeParam.FindAllString(docPath, -1) {
		inPath = append(inPath, strings.Trim(m, "{}"))
	}
	sort.Strings(params)
	sort.Strings(inPath)
	if !slices.Equal(params, inPath) {
		t.Errorf("%s: path parameters %v declared, %v in the path", route, params, inPath)
	}

	responses, _ := op["responses"].(map[string]any)
	success := 0
	for code, r := range responses {
		r := docDeref(doc, r)
		if code >= "200" && code < "400" {
			success++
		}
		for ctype, c := range docMap(r["content"]) {
			if ctype == "application/json" && len(docExamples(docMap(c))) == 0 {
				t.Errorf("%s: response %s has no example", route, code)
			}
			notReady := route == "GET /healthz" && code == "503" // the health report, not an error
			page := route == "GET /v1/unsubscribe/{}"            // a page for a person, errors too
			if code >= "400" && !notReady && !page && docJSON(docMap(c)["schema"]) != `{"$ref":"#/components/schemas/Error"}` {
				t.Errorf("%s: error response %s is not the Error schema", route, code)
			}
		}
	}
	// One success response; an operation that answers one way or another
	// by its request (POST /v1/sends: 200 for a recipient, 202 for a
	// segment) has several, each with examples named after the request
	// examples that get it.
	if success != 1 && (success == 0 || !namedSuccesses(doc, responses)) {
		t.Errorf("%s: %d success responses, want 1 (or several with named JSON examples)", route, success)
	}
	if body := docMap(op["requestBody"]); body != nil {
		// JSON, the form of RFC 8058's one-click unsubscribe, or a report
		// as mail.
		content := docMap(body["content"])
		c := docMap(content["application/json"])
		for _, other := range []string{"application/x-www-form-urlencoded", "message/rfc822"} {
			if c == nil {
				c = docMap(content[other])
			}
		}
		if c == nil {
			t.Errorf("%s: request body is neither application/json, a form nor message/rfc822", route)
		} else if len(docExamples(c)) == 0 {
			t.Errorf("%s: request body has no example", route)
		}
	}
}

// namedSuccesses reports whether every success response has JSON examples
// named other than default, so that the contract test can tell which one a
// request example gets.
func namedSuccesses(doc map[string]any, responses map[string]any) bool {
	for code, r := range responses {
		if code < "200" || code >= "400" {
			continue
		}
		exs := docExamples(docMap(docMap(docDeref(doc, r)["content"])["application/json"]))
		delete(exs, "default")
		if len(exs) == 0 {
			return false
		}
	}
	return true
}

// TestOpenAPIRoutes: the document lists every route the server registers,
// and nothing else.
func TestOpenAPIRoutes(t *testing.T) {
	ops := docOperations(t, loadOpenAPI(t))
	registered := map[string]bool{}
	for _, pattern := range Routes() {
		method, path, ok := strings.Cut(pattern, " ")
		if !ok {
			t.Fatalf("route %q has no method", pattern)
		}
		registered[normaliseRoute(method, path)] = true
		if ops[normaliseRoute(method, path)] == nil {
			t.Errorf("route %s is not in openapi.json", pattern)
		}
	}
	for route := range ops {
		if !registered[route] {
			t.Errorf("openapi.json documents %s, which the server does not register", route)
		}
	}
}

// TestOpenAPISecurity: an operation the document says needs a key answers
// 401 with the error shape without one; the document itself is public.
func TestOpenAPISecurity(t *testing.T) {
	doc := loadOpenAPI(t)
	srv := Handler(Parts{}, Options{MaxBodyBytes: 1 << 20, Metrics: http.NotFoundHandler()})
	for route, op := range docOperations(t, doc) {
		if sec, ok := op["security"]; ok && len(docList(sec)) == 0 {
			continue // public: exercised without a key by TestOpenAPIContract
		}
		method, path, _ := strings.Cut(route, " ")
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest(method, strings.ReplaceAll(path, "{}", "x"), strings.NewReader("{}")))
		var e errorBody
		if rec.Code != http.StatusUnauthorized || json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Error.Code != "unauthorized" {
			t.Errorf("%s without a key: %d %s", route, rec.Code, rec.Body)
		}
	}

	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/openapi.json", nil))
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" || !bytes.Equal(rec.Body.Bytes(), openAPI) {
		t.Errorf("GET /v1/openapi.json: %d %q, %d bytes", rec.Code, rec.Header().Get("Content-Type"), rec.Body.Len())
	}
}

// ---- helpers over the decoded document ----

func docMap(v any) map[string]any { m, _ := v.(map[string]any); return m }

func docList(v any) []any { l, _ := v.([]any); return l }

func docDig(doc map[string]any, keys ...string) map[string]any {
	m := doc
	for _, k := range keys {
		m = docMap(m[k])
	}
	return m
}

// resolveRef returns the object a local $ref ("#/components/...") names.
func docRef(doc map[string]any, ref string) map[string]any {
	rest, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil
	}
	return docDig(doc, strings.Split(rest, "/")...)
}

// deref follows $ref when v is a reference.
func docDeref(doc map[string]any, v any) map[string]any {
	m := docMap(v)
	if r, ok := m["$ref"].(string); ok {
		return docRef(doc, r)
	}
	return m
}

// examplesOf returns a media type's examples by name ("default" for example).
func docExamples(c map[string]any) map[string]any {
	out := map[string]any{}
	if ex, ok := c["example"]; ok {
		out["default"] = ex
	}
	for name, ex := range docMap(c["examples"]) {
		out[name] = docMap(ex)["value"]
	}
	return out
}

func docJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
