package main

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/pigeonpost/pigeonpost/config"
	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// secretForms are the forms of an API key that must never be stored or
// logged: the key, its random part, and its base64 as SMTP AUTH sends it
// (PLAIN's "\x00apikey\x00key", LOGIN's bare key).
func secretForms(key string) []string {
	_, random, _ := strings.Cut(strings.TrimPrefix(key, "sp_"), "_")
	return []string{key, random,
		base64.StdEncoding.EncodeToString([]byte("\x00apikey\x00" + key)),
		base64.StdEncoding.EncodeToString([]byte(key)),
	}
}

// S16: a key made through the API and the bootstrap key, each used over
// SMTP AUTH (to send) and REST, and an unknown key tried: no Redis value
// (of any type) holds a key in any form, nor does a debug-level log line.
// As controls, the scan finds the keys' SHA-256 (what is stored), and the
// log holds the debug lines of the sends.
func TestKeysNeverStoredNorLogged(t *testing.T) {
	s := startStack(t, func(c *config.Config) { c.Log.Level = "debug" })
	created, _ := s.CreateKey(map[string]any{"name": "ci"})
	unknown := "sp_live_neverissuedkey000000000000000009"
	from, to := "hello@"+senderDomain, "user@"+rcptDomain
	for _, key := range []string{created, liveKey} {
		reply, err := testkit.SendMail(s.smtpClient(true, key), from, []string{to}, testkit.SimpleMessage(from, to, "key"))
		if err != nil {
			t.Fatalf("send with a key: %v", err)
		}
		s.waitStatus(queuedID(t, reply), "delivered")
		if code := s.JSON("GET", "/v1/emails", key, nil, nil); code != http.StatusOK {
			t.Fatalf("GET /v1/emails: %d", code)
		}
	}
	c := s.smtpClient(true, "")
	testkit.WantSMTPError(t, c.Auth(sasl.NewPlainClient("", "apikey", unknown)), 535, smtp.EnhancedCode{5, 7, 8})
	if code := s.JSON("GET", "/v1/emails", unknown, nil, nil); code != http.StatusUnauthorized {
		t.Fatalf("unknown key: %d", code)
	}

	rdb := s.redis.Client(t)
	for _, key := range []string{created, liveKey, unknown} {
		if found := testkit.RedisKeysContaining(t, rdb, secretForms(key)...); len(found) > 0 {
			t.Errorf("a form of the key %.12s… is stored in %v", key, found)
		}
		for _, f := range secretForms(key) {
			if strings.Contains(s.logs.String(), f) {
				t.Errorf("the log holds a form of the key %.12s…: %q", key, f)
			}
		}
	}
	for _, key := range []string{created, liveKey} {
		if len(testkit.RedisKeysContaining(t, rdb, store.HashKey(key))) == 0 {
			t.Errorf("control: the hash of %.12s… is not found: the scan does not see key records", key)
		}
	}
	if !strings.Contains(s.logs.String(), "level=DEBUG") || !strings.Contains(s.logs.String(), "message queued") {
		t.Errorf("control: no debug line logged:\n%s", s.logs.String())
	}
}

// S16: an unknown key and a revoked one get the same answer, over REST
// (status and body) and SMTP AUTH (code, enhanced code, text): nothing
// tells a guesser that a key once existed.
func TestUnknownAndRevokedKeysAnswerAlike(t *testing.T) {
	s := startStack(t)
	revoked, id := s.CreateKey(map[string]any{"name": "old"})
	if code := s.JSON("DELETE", "/v1/api-keys/"+id, liveKey, nil, nil); code != http.StatusOK {
		t.Fatalf("revoke: %d", code)
	}
	unknown := "sp_live_neverissuedkey000000000000000009"
	r1, r2 := s.Call("GET", "/v1/emails", unknown, nil, nil), s.Call("GET", "/v1/emails", revoked, nil, nil)
	if r1.Code != http.StatusUnauthorized || r1.Code != r2.Code || string(r1.Body) != string(r2.Body) {
		t.Errorf("REST: unknown %d %s, revoked %d %s", r1.Code, r1.Body, r2.Code, r2.Body)
	}
	auth := func(key string) *smtp.SMTPError {
		t.Helper()
		err := s.smtpClient(true, "").Auth(sasl.NewPlainClient("", "apikey", key))
		var se *smtp.SMTPError
		if !errors.As(err, &se) {
			t.Fatalf("AUTH: %v", err)
		}
		return se
	}
	e1, e2 := auth(unknown), auth(revoked)
	if e1.Code != 535 || e1.Code != e2.Code || e1.EnhancedCode != e2.EnhancedCode || e1.Message != e2.Message {
		t.Errorf("SMTP: unknown %d %v %q, revoked %d %v %q", e1.Code, e1.EnhancedCode, e1.Message, e2.Code, e2.EnhancedCode, e2.Message)
	}
}
