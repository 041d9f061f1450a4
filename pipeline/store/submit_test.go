package store

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// PersistWith with an idempotency key writes everything or nothing, in one
// round trip (a script) or, when the writes hold a script call (a
// warning event), under WATCH: a claim never written holds while its key
// does not exist, a written one while the key holds its token; a script
// cache emptied (a restarted or promoted master) is filled again; a large
// body, written before the script, is kept by it, and expires when the
// guard did not hold.
func TestPersistGuards(t *testing.T) {
	f := newMessageFixture(t)
	var body []byte
	email := func(warnings ...string) NewEmail {
		e := &Email{ID: NewID("em"), AccountID: "acct_1", KeyID: "key_1", Mode: ModeLive, Status: StatusPending,
			ToAddress: "r@example.test", CreatedAt: time.Now().UTC()}
		return NewEmail{Email: e, Body: body, Warnings: warnings}
	}
	persist := func(ne NewEmail, d IdemDone) error {
		d.Response, d.TTL = []byte(`{"ids":["`+ne.Email.ID+`"]}`), time.Hour
		return f.s.PersistWith(f.ctx, []NewEmail{ne}, PersistOptions{Enqueue: true, Idempotency: &d})
	}
	exists := func(ne NewEmail) bool {
		t.Helper()
		n, err := f.rdb.Exists(f.ctx, EmailKey(ne.Email.ID)).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	for _, c := range []struct {
		name     string
		warnings []string // a warning is written by a script: the WATCH path
		flush    bool     // the script cache emptied first
		size     int      // of the body
	}{
		{name: "script", size: 10},
		{name: "watch", warnings: []string{"a part left as it was"}, size: 10},
		{name: "script reloaded", flush: true, size: 10},
		{name: "script, large body", size: bulkyValue},
		{name: "watch, large body", warnings: []string{"a part left as it was"}, size: bulkyValue},
	} {
		t.Run(c.name, func(t *testing.T) {
			body = bytes.Repeat([]byte("b"), c.size)
			if c.flush {
				if err := f.rdb.ScriptFlush(f.ctx).Err(); err != nil {
					t.Fatal(err)
				}
			}
			// A claim never written.
			key := IdempotencyKey(0, "acct_1", NewID("digest"))
			first, second := email(c.warnings...), email(c.warnings...)
			if err := persist(first, IdemDone{Key: key, FP: "fp"}); err != nil || !exists(first) {
				t.Fatalf("first copy: %v, stored %v", err, exists(first))
			}
			rec, err := f.s.IdemGet(f.ctx, key)
			if err != nil || rec == nil || rec.State != IdemStateDone || rec.Fingerprint != "fp" {
				t.Fatalf("idempotency record %+v, %v", rec, err)
			}
			if got, err := f.rdb.Get(f.ctx, BodyKey(first.Email.ID)).Bytes(); err != nil || !bytes.Equal(got, body) {
				t.Errorf("first copy's body: %d bytes, %v; want %d", len(got), err, len(body))
			}
			if ttl, err := f.rdb.PTTL(f.ctx, BodyKey(first.Email.ID)).Result(); err != nil || ttl != -1 {
				t.Errorf("first copy's body expires in %v (%v), want never", ttl, err)
			}
			if err := persist(second, IdemDone{Key: key, FP: "fp"}); !errors.Is(err, ErrClaimLost) || exists(second) {
				t.Errorf("second copy: %v (want ErrClaimLost), stored %v (want nothing)", err, exists(second))
			}
			if ttl, err := f.rdb.PTTL(f.ctx, BodyKey(second.Email.ID)).Result(); err != nil || ttl == -1 {
				t.Errorf("second copy's body expires in %v (%v): want no body, or one that expires", ttl, err)
			}

			// A claim written: its token must still be there.
			key = IdempotencyKey(0, "acct_1", NewID("digest"))
			if rec, err := f.s.IdemClaim(f.ctx, key, "fp", "tok_1", time.Minute); rec != nil || err != nil {
				t.Fatal(rec, err)
			}
			other, mine := email(c.warnings...), email(c.warnings...)
			if err := persist(other, IdemDone{Key: key, Token: "tok_2"}); !errors.Is(err, ErrClaimLost) || exists(other) {
				t.Errorf("another token: %v (want ErrClaimLost), stored %v (want nothing)", err, exists(other))
			}
			if err := persist(mine, IdemDone{Key: key, Token: "tok_1"}); err != nil || !exists(mine) {
				t.Errorf("the claim's token: %v, stored %v", err, exists(mine))
			}
			if token, err := f.rdb.HGet(f.ctx, key, idemFieldToken).Result(); err == nil {
				t.Errorf("the claim's token %q is left after its write", token)
			}
			if rec, err := f.s.IdemGet(f.ctx, key); err != nil || rec == nil || rec.State != IdemStateDone {
				t.Errorf("idempotency record after the claim's write %+v, %v", rec, err)
			}
			if n, err := f.rdb.XLen(f.ctx, StreamKey(0)).Result(); err != nil || n == 0 {
				t.Errorf("delivery stream length %d, %v", n, err)
			}
		})
	}
}
