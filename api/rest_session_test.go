package api_test

import (
	"net/http"
	"testing"

	"github.com/pigeonpost/pigeonpost/api"
	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// Options.Session is the one hook the dashboard authenticates through: it
// is asked only when the request carries no API key, its key then acts as
// a key would, "no session" (nil) is the usual 401, and its error is the
// answer. An API key always wins, and is not second-guessed by the hook.
func TestRESTSessionHook(t *testing.T) {
	var calls int
	var sessionKey *store.Key
	hook := func(r *http.Request) (*store.Key, error) {
		calls++
		switch r.Header.Get("X-Test-Session") {
		case "ok":
			return sessionKey, nil
		case "forged":
			return nil, pipeline.ErrForbidden.With("cross-site request refused")
		}
		return nil, nil
	}
	s := newServer(t, func(c *serverConfig) { c.api.Session = hook })
	k, err := s.p.Pipeline.Authenticate(t.Context(), liveKey)
	if err != nil {
		t.Fatal(err)
	}
	sessionKey = k

	var keys struct{ Data []struct{ ID string } }
	r := s.Call("GET", "/v1/api-keys", "", map[string]string{"X-Test-Session": "ok"}, nil)
	if r.Code != http.StatusOK {
		t.Fatalf("with a session: %d %s", r.Code, r.Body)
	}
	r.Decode(t, &keys)
	if len(keys.Data) != 1 || keys.Data[0].ID != k.ID {
		t.Errorf("with a session, the keys listed are %+v, want the session's account's one key %s", keys.Data, k.ID)
	}

	if r := s.Call("GET", "/v1/api-keys", "", nil, nil); r.Code != http.StatusUnauthorized || r.ErrCode() != "unauthorized" {
		t.Errorf("neither key nor session: %d %s, want 401 unauthorized", r.Code, r.Body)
	}
	if r := s.Call("POST", "/v1/domains", "", map[string]string{"X-Test-Session": "forged"}, map[string]any{"name": "x.test"}); r.Code != http.StatusForbidden {
		t.Errorf("a session the hook refuses: %d %s, want its 403", r.Code, r.Body)
	}

	before := calls
	if r := s.Call("GET", "/v1/api-keys", liveKey, map[string]string{"X-Test-Session": "forged"}, nil); r.Code != http.StatusOK {
		t.Errorf("an API key beside session headers: %d %s, want 200", r.Code, r.Body)
	}
	if r := s.Call("GET", "/v1/api-keys", "sp_live_wrong", map[string]string{"X-Test-Session": "ok"}, nil); r.Code != http.StatusUnauthorized {
		t.Errorf("a bad API key beside a good session: %d, want 401 (the key decides)", r.Code)
	}
	if calls != before {
		t.Errorf("the hook was asked %d times for requests with an API key", calls-before)
	}
}

// Without a hook, nothing but an API key authenticates.
func TestRESTNoSessionHook(t *testing.T) {
	s := newServer(t)
	var opt api.Options
	if opt.Session != nil {
		t.Fatal("Options.Session is set by default")
	}
	if r := s.Call("GET", "/v1/api-keys", "", map[string]string{"X-CSRF-Token": "x", "Cookie": "pp_session=x"}, nil); r.Code != http.StatusUnauthorized {
		t.Errorf("a session cookie without the hook: %d, want 401", r.Code)
	}
}
