package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// TestAdminDestinations: the operator's API lists what traffic shaping
// suspended or limited (GET /admin/v1/destinations), the suspended with
// the end of their suspension and the reply that caused it, each with the
// emails waiting for it, and refuses a malformed window.
func TestAdminDestinations(t *testing.T) {
	st := store.New(testkit.StartRedis(t).Client(t), time.Now)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	until, _, err := st.SuspendDestination(ctx, "google", now, time.Minute, 30*time.Minute, "deliver: 421 4.7.0 try again later")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"google", "mx.example.test"} {
		if err := st.NoteDestination(ctx, d, now); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"em_1", "em_2"} { // deferred after mx.example.test's answer
		if err := st.Deferred(ctx, "mx.example.test", id, now.Add(time.Minute), now); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(AdminHandler(Parts{Destinations: st}, Options{}))
	defer srv.Close()

	get := func(query string) (int, []destinationJSON) {
		t.Helper()
		resp, err := http.Get(srv.URL + "/admin/v1/destinations" + query)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			Destinations []destinationJSON `json:"destinations"`
		}
		if resp.StatusCode == http.StatusOK {
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatal(err)
			}
		}
		return resp.StatusCode, body.Destinations
	}
	code, list := get("")
	if code != http.StatusOK || len(list) != 2 {
		t.Fatalf("%d %+v, want two destinations", code, list)
	}
	byName := map[string]destinationJSON{}
	for _, d := range list {
		byName[d.Name] = d
	}
	if g := byName["google"]; !g.Suspended || g.SuspendedUntil == nil || !g.SuspendedUntil.Equal(until) || g.Suspensions != 1 || g.Reason == "" {
		t.Errorf("google: %+v, want suspended until %v", g, until)
	}
	if m := byName["mx.example.test"]; m.Suspended || m.SuspendedUntil != nil || m.Waiting != 2 {
		t.Errorf("mx.example.test: %+v, want limited, not suspended, two emails waiting", m)
	}
	if code, list := get("?limit=1"); code != http.StatusOK || len(list) != 1 {
		t.Errorf("limit=1: %d %+v", code, list)
	}
	for _, q := range []string{"?within=forever", "?within=-1h", "?within=200h", "?limit=0", "?limit=x"} {
		if code, _ := get(q); code != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", q, code)
		}
	}
}
