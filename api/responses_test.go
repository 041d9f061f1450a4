package api

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pigeonpost/pigeonpost/pipeline/pipelinetest"
)

// TestDomainAnswersKeepTheKeyPrivate: the answers about a domain come from
// api's own types, so the DKIM private key and selector kept in its record
// never reach a client, whatever tags the record has.
func TestDomainAnswersKeepTheKeyPrivate(t *testing.T) {
	p := pipelinetest.New(t, pipelinetest.Options{})
	const secret = "sp_live_responsestestkey000000000001"
	k := p.Key(t, "acme", secret)
	d, err := p.Account.AddDomain(context.Background(), k, "acme.test")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(Handler(Parts{Pipeline: p.Pipeline, Account: p.Account, Compose: p.Compose, Engagement: p.Engagement},
		Options{MaxBodyBytes: 1 << 20}))
	defer srv.Close()
	for _, path := range []string{"/v1/domains", "/v1/domains/" + d.ID, "/v1/api-keys"} {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !json.Valid(body) {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
		}
		for _, secretPart := range []string{"PRIVATE KEY", "privateKey", "selector", k.AccountID, "keyHash"} {
			if strings.Contains(string(body), secretPart) {
				t.Errorf("GET %s shows %q: %s", path, secretPart, body)
			}
		}
	}
}
