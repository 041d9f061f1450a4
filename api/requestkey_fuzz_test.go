package api

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pigeonpost/pigeonpost/pipeline"
)

// FuzzRequestKey: whatever the two headers hold, requestKey answers a
// non-empty key that one of them carries, or ErrMissingKey when neither
// carries one, or ErrAuthFailed when they carry different keys; and it
// never takes X-API-Key over a different Bearer key.
func FuzzRequestKey(f *testing.F) {
	f.Add("Bearer sp_live_a", "")
	f.Add("", "sp_live_a")
	f.Add("Bearer sp_live_a", "sp_live_a")
	f.Add("Bearer pp_live_a", "sp_live_a")
	f.Add("Bearer sp_live_a", "sp_live_b")
	f.Add("Basic eDp5", "sp_live_a")
	f.Add("Bearer  ", " ")
	f.Add("bearer sp_live_a", "")
	f.Fuzz(func(t *testing.T, authorization, xAPIKey string) {
		r := httptest.NewRequest("GET", "/v1/emails", nil)
		r.Header.Set("Authorization", authorization)
		r.Header.Set("X-API-Key", xAPIKey)
		// What the headers carry, as a server would read them.
		authorization, xAPIKey = r.Header.Get("Authorization"), r.Header.Get("X-API-Key")
		bearer := ""
		if v, ok := strings.CutPrefix(authorization, "Bearer "); ok {
			bearer = strings.TrimSpace(v)
		}
		header := strings.TrimSpace(xAPIKey)

		key, err := requestKey(r)
		switch {
		case bearer == "" && header == "":
			if !errors.Is(err, pipeline.ErrMissingKey) {
				t.Fatalf("no key: got %q, %v", key, err)
			}
		case bearer != "" && header != "" && pipeline.CanonicalSecret(bearer) != pipeline.CanonicalSecret(header):
			if !errors.Is(err, pipeline.ErrAuthFailed) {
				t.Fatalf("different keys %q and %q: got %q, %v", bearer, header, key, err)
			}
		default:
			if err != nil || key == "" || (key != bearer && key != header) {
				t.Fatalf("bearer %q, header %q: got %q, %v", bearer, header, key, err)
			}
			if bearer != "" && key != bearer {
				t.Fatalf("bearer %q, header %q: took the header", bearer, header)
			}
		}
	})
}
