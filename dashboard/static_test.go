package dashboard_test

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// The page and its assets are served with their content types and the
// dashboard's security headers: a CSP that allows scripts only from the
// dashboard's files (no inline script), no framing, no sniffing, no
// referrer. Paths that are not the dashboard's go to the REST API.
func TestStaticAssets(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, tc := range []struct{ path, ctype, has string }{
		{"/", "text/html; charset=utf-8", `<script type="module" src="/dashboard/assets/app.js">`},
		{"/dashboard/assets/app.js", "text/javascript; charset=utf-8", "X-CSRF-Token"},
		{"/dashboard/assets/mime.js", "text/javascript; charset=utf-8", "export function textParts"},
		{"/dashboard/assets/style.css", "text/css; charset=utf-8", ":root"},
		{"/dashboard/assets/vendor/uPlot.iife.min.js", "text/javascript; charset=utf-8", "uPlot"},
		{"/dashboard/assets/vendor/uPlot.min.css", "text/css; charset=utf-8", ".uplot"},
	} {
		res, b := e.do(req{method: "GET", path: tc.path})
		if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != tc.ctype || !strings.Contains(string(b), tc.has) {
			t.Errorf("GET %s: %d %s, %d bytes, want 200 %s containing %q", tc.path, res.StatusCode, res.Header.Get("Content-Type"), len(b), tc.ctype, tc.has)
		}
		wantSecurityHeaders(t, tc.path, res.Header)
	}

	// A revalidation of an unchanged file is a 304.
	for _, path := range []string{"/", "/dashboard/assets/app.js"} {
		res, _ := e.do(req{method: "GET", path: path})
		tag := res.Header.Get("ETag")
		if tag == "" {
			t.Errorf("GET %s: no ETag", path)
			continue
		}
		if res, _ := e.do(req{method: "GET", path: path, headers: map[string]string{"If-None-Match": tag}}); res.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s with If-None-Match: %s: %d, want 304", path, tag, res.StatusCode)
		}
		if res, _ := e.do(req{method: "GET", path: path, headers: map[string]string{"If-None-Match": `"other"`}}); res.StatusCode != http.StatusOK {
			t.Errorf("GET %s with another ETag: %d, want 200", path, res.StatusCode)
		}
	}

	for _, path := range []string{"/dashboard/assets/", "/dashboard/assets/vendor/", "/dashboard/assets/nope.js", "/dashboard/nope"} {
		res, _ := e.do(req{method: "GET", path: path})
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404 (no listing)", path, res.StatusCode)
		}
		wantSecurityHeaders(t, path, res.Header)
	}
	res, b := e.do(req{method: "GET", path: "/v1/nope"})
	if res.StatusCode != http.StatusNotFound || errCode(b) != "not_found" || res.Header.Get("Content-Security-Policy") != "" {
		t.Errorf("GET /v1/nope: %d %s CSP %q, want the REST API's JSON 404 without the dashboard's headers",
			res.StatusCode, b, res.Header.Get("Content-Security-Policy"))
	}
	if res, _ := e.do(req{method: "GET", path: "/healthz"}); res.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz: %d, want the API's 200", res.StatusCode)
	}
}

func wantSecurityHeaders(t *testing.T, path string, h http.Header) {
	t.Helper()
	csp := h.Get("Content-Security-Policy")
	directives := map[string]string{}
	for _, d := range strings.Split(csp, ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
		directives[name] = value
	}
	if directives["script-src"] != "'self'" || directives["default-src"] != "'none'" || directives["frame-ancestors"] != "'none'" ||
		directives["base-uri"] != "'none'" || directives["connect-src"] != "'self'" {
		t.Errorf("GET %s: CSP %q, want default-src 'none', script-src 'self' only, connect-src 'self', frame-ancestors and base-uri 'none'", path, csp)
	}
	for name, want := range map[string]string{"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"} {
		if got := h.Get(name); got != want {
			t.Errorf("GET %s: %s %q, want %q", path, name, got, want)
		}
	}
}

// firstLoadBudget is the bound on what the first visit downloads,
// compressed.
const firstLoadBudget = 200 << 10

var (
	assetRef  = regexp.MustCompile(`(?:src|href)="(/dashboard/assets/[^"]+)"`)
	jsImport  = regexp.MustCompile(`(?m)^import [^;]*from "\./([^"]+)"`)
	jsLiteral = regexp.MustCompile(`"(/dashboard/assets/[^"]+)"`)
)

// What the index loads (its scripts and styles, the modules they import,
// and the files they fetch later, the chart library included) stays under
// the first-load budget gzipped. The server does not compress: the bytes
// on the wire are checked against the budget as well.
func TestFirstLoadBudget(t *testing.T) {
	e := newEnv(t, envOptions{})
	_, index := e.do(req{method: "GET", path: "/"})
	seen := map[string]bool{"/": true}
	queue := []string{"/"}
	bodies := map[string][]byte{"/": index}
	for len(queue) > 0 {
		path := queue[0]
		queue = queue[1:]
		b := bodies[path]
		var refs []string
		for _, m := range assetRef.FindAllSubmatch(b, -1) {
			refs = append(refs, string(m[1]))
		}
		if strings.HasSuffix(path, ".js") {
			dir := path[:strings.LastIndex(path, "/")+1]
			for _, m := range jsImport.FindAllSubmatch(b, -1) {
				refs = append(refs, dir+string(m[1]))
			}
			for _, m := range jsLiteral.FindAllSubmatch(b, -1) {
				refs = append(refs, string(m[1]))
			}
		}
		for _, ref := range refs {
			if seen[ref] {
				continue
			}
			seen[ref] = true
			res, body := e.do(req{method: "GET", path: ref})
			if res.StatusCode != http.StatusOK {
				t.Fatalf("%s loads %s: %d", path, ref, res.StatusCode)
			}
			bodies[ref] = body
			queue = append(queue, ref)
		}
	}
	for _, want := range []string{"/dashboard/assets/app.js", "/dashboard/assets/mime.js", "/dashboard/assets/style.css", "/dashboard/assets/vendor/uPlot.iife.min.js"} {
		if !seen[want] {
			t.Errorf("the walk from the index did not find %s: the budget would not count it", want)
		}
	}
	var raw, gz int
	for path, b := range bodies {
		var buf bytes.Buffer
		w := gzip.NewWriter(&buf)
		_, _ = w.Write(b)
		_ = w.Close()
		raw += len(b)
		gz += buf.Len()
		t.Logf("%-45s %7d bytes, %6d gzipped", path, len(b), buf.Len())
	}
	t.Logf("first load: %d files, %d bytes, %d gzipped (budget %d)", len(bodies), raw, gz, firstLoadBudget)
	if gz >= firstLoadBudget || raw >= firstLoadBudget {
		t.Errorf("first load is %d bytes, %d gzipped: over the budget of %d", raw, gz, firstLoadBudget)
	}
}
