package api_test

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestDomainAnswersKeepTheKeyPrivate: the answers about a domain come from
// api's own types, so the DKIM private key and selector kept in its record
// never reach a client, whatever tags the record has.
func TestDomainAnswersKeepTheKeyPrivate(t *testing.T) {
	s := newServer(t)
	for _, path := range []string{"/v1/domains", "/v1/domains/" + s.domainID(senderDomain), "/v1/api-keys"} {
		r := s.Call("GET", path, liveKey, nil, nil)
		if r.Code != 200 || !json.Valid(r.Body) {
			t.Fatalf("GET %s: %d %s", path, r.Code, r.Body)
		}
		for _, secretPart := range []string{"PRIVATE KEY", "privateKey", "selector", s.accountID, "keyHash"} {
			if strings.Contains(string(r.Body), secretPart) {
				t.Errorf("GET %s shows %q: %s", path, secretPart, r.Body)
			}
		}
	}
}
