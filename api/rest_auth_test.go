package api_test

import (
	"net/http"
	"strings"
	"testing"
)

// ppSpelling writes an sp_live_/sp_test_ key with Pigeon Perch's prefix.
func ppSpelling(key string) string { return "p" + strings.TrimPrefix(key, "s") }

// Pigeon Perch's pp_live_X and pp_test_X are the keys sp_live_X and
// sp_test_X: they authenticate as those keys, on the same account, and stop
// with them when revoked.
func TestRESTPigeonPerchKeyPrefix(t *testing.T) {
	s := newServer(t)
	ppLive := ppSpelling(liveKey)
	if !strings.HasPrefix(ppLive, "pp_live_") {
		t.Fatalf("ppSpelling(%q) = %q", liveKey, ppLive)
	}
	sent := s.SendOK(ppLive, map[string]any{"from": s.From, "to": s.To, "subject": "pp", "text": "x"}, nil)
	var got struct{ ID string }
	if code := s.JSON("GET", "/v1/emails/"+sent.ID, liveKey, nil, &got); code != http.StatusOK || got.ID != sent.ID {
		t.Errorf("the email sent with %s… read with sp_live_…: %d %+v", ppLive[:8], code, got)
	}

	secret, id := s.CreateKey(map[string]any{"name": "test mode", "mode": "test", "permission": "sending"})
	if !strings.HasPrefix(secret, "sp_test_") {
		t.Fatalf("test-mode key %q", secret)
	}
	ppTest := ppSpelling(secret)
	if code := s.JSON("GET", "/v1/emails", ppTest, nil, nil); code != http.StatusOK {
		t.Errorf("pp_test_ spelling: %d", code)
	}
	if code := s.JSON("GET", "/v1/emails", "pp_live_"+strings.TrimPrefix(secret, "sp_test_"), nil, nil); code != http.StatusUnauthorized {
		t.Errorf("a test key spelled pp_live_: %d, want 401", code)
	}
	if code := s.JSON("DELETE", "/v1/api-keys/"+id, liveKey, nil, nil); code != http.StatusOK {
		t.Fatalf("delete: %d", code)
	}
	for _, k := range []string{secret, ppTest} {
		if code := s.JSON("GET", "/v1/emails", k, nil, nil); code != http.StatusUnauthorized {
			t.Errorf("revoked key spelled %.8s…: %d, want 401", k, code)
		}
	}
}

// The key may come in Authorization: Bearer or in X-API-Key; both at once
// must name the same key.
func TestRESTAPIKeyHeader(t *testing.T) {
	s := newServer(t)
	other, _ := s.CreateKey(map[string]any{"name": "other", "mode": "live", "permission": "full"})
	bearer := func(k string) string { return "Bearer " + k }
	for _, tc := range []struct {
		name          string
		authorization string
		xAPIKey       string
		code          int
		msgHas        []string // in the error message
	}{
		{"Bearer only", bearer(liveKey), "", 200, nil},
		{"X-API-Key only", "", liveKey, 200, nil},
		{"X-API-Key with pp_live_", "", ppSpelling(liveKey), 200, nil},
		{"X-API-Key with spaces around", "", "  " + liveKey + " ", 200, nil},
		{"both, the same key", bearer(liveKey), liveKey, 200, nil},
		{"both, one key in two spellings", bearer(ppSpelling(liveKey)), liveKey, 200, nil},
		{"both, two valid keys", bearer(liveKey), other, 401, []string{"Authorization", "X-API-Key", "different"}},
		{"both, a valid and an unknown key", bearer(liveKey), "sp_live_nope", 401, []string{"Authorization", "X-API-Key", "different"}},
		{"both, an unknown and a valid key", bearer("sp_live_nope"), liveKey, 401, []string{"Authorization", "X-API-Key", "different"}},
		{"X-API-Key unknown", "", "sp_live_nope", 401, []string{"invalid API key"}},
		{"Authorization of another scheme, X-API-Key", "Basic dXNlcjpwYXNz", liveKey, 200, nil},
		{"Authorization of another scheme only", "Basic dXNlcjpwYXNz", "", 401, []string{"Authorization: Bearer", "X-API-Key"}},
		{"empty Bearer, X-API-Key", "Bearer ", liveKey, 200, nil},
		{"neither", "", "", 401, []string{"Authorization: Bearer", "X-API-Key"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := map[string]string{}
			if tc.authorization != "" {
				h["Authorization"] = tc.authorization
			}
			if tc.xAPIKey != "" {
				h["X-API-Key"] = tc.xAPIKey
			}
			r := s.Call("GET", "/v1/emails", "", h, nil)
			if r.Code != tc.code {
				t.Fatalf("%d %s, want %d", r.Code, r.Body, tc.code)
			}
			if tc.code == http.StatusOK {
				return
			}
			if r.ErrCode() != "unauthorized" {
				t.Errorf("code %q, want unauthorized", r.ErrCode())
			}
			for _, want := range tc.msgHas {
				if !strings.Contains(r.ErrMessage(), want) {
					t.Errorf("message %q lacks %q", r.ErrMessage(), want)
				}
			}
		})
	}

	// A send authenticated by X-API-Key alone.
	r := s.Call("POST", "/v1/emails", "", map[string]string{"X-API-Key": ppSpelling(liveKey)},
		map[string]any{"from": s.From, "to": s.To, "subject": "x-api-key", "text": "x"})
	if r.Code != http.StatusOK {
		t.Errorf("send with X-API-Key: %d %s", r.Code, r.Body)
	}
}

// Guessing keys over REST: after 20 failures an address is locked out,
// its attempts refused unchecked (even with a good key) with 429 and a
// Retry-After (issue 18: REST key guessing ran at 5,000/s).
// The test client is on loopback, which is locked out only with
// auth.lockout_private_addresses (a proxy's address would lock every
// tenant out).
func TestRESTAuthLockout(t *testing.T) {
	s := newServer(t, func(c *serverConfig) { c.parts.Pipeline.LockOutPrivate = true })
	for i := range 20 {
		if r := s.Call("GET", "/v1/domains", "sp_live_guessguessguessguessguess", nil, nil); r.Code != 401 {
			t.Fatalf("guess %d: %d %s", i+1, r.Code, r.Body)
		}
	}
	r := s.Call("GET", "/v1/domains", liveKey, nil, nil)
	if r.Code != 429 || r.ErrCode() != "too_many_auth_failures" || r.Header.Get("Retry-After") == "" {
		t.Errorf("a good key from a locked-out address: %d %s (Retry-After %q)", r.Code, r.Body, r.Header.Get("Retry-After"))
	}
}
