package tracking

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"sync"
	"testing"
)

const testEmailID = "em_01hq3v5k8xj2m4n6p8r0t2v4w6"

func TestSignerRoundTrip(t *testing.T) {
	s := NewSigner([]byte("server secret"))
	for _, tt := range []struct {
		email string
		index int
	}{
		{testEmailID, 0},
		{testEmailID, 7},
		{testEmailID, 999},
		{"em_aaaaaaaaaaaaaaaaaaaaaaaaaa", 1 << 40},
		{"with.dots.inside", 3},
	} {
		id := s.ClickID(tt.email, tt.index)
		if strings.ContainsAny(id, "/?#%+= ") {
			t.Errorf("%q is not path-safe", id)
		}
		email, index, ok := s.ParseClickID(id)
		if !ok || email != tt.email || index != tt.index {
			t.Errorf("ParseClickID(%q) = %q, %d, %v; want %q, %d", id, email, index, ok, tt.email, tt.index)
		}
	}
}

func TestSignerFormat(t *testing.T) {
	id := NewSigner([]byte("k")).ClickID(testEmailID, 12)
	parts := strings.Split(id, ".")
	if len(parts) != 3 || parts[0] != testEmailID || parts[1] != "12" || len(parts[2]) != 22 {
		t.Errorf("ClickID = %q, want <emailID>.<index>.<22 base64url chars>", id)
	}
}

func TestSignerRejectsTampering(t *testing.T) {
	s := NewSigner([]byte("server secret"))
	id := s.ClickID(testEmailID, 5)
	mac := id[strings.LastIndex(id, ".")+1:]
	flip := func(str string, i int) string {
		b := []byte(str)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	// The last base64 character carries 2 MAC bits and 4 zero bits: a
	// spelling with a padding bit set decodes to the same MAC but must not
	// verify either.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	lastPad := []byte(mac)
	lastPad[len(lastPad)-1] = alphabet[strings.IndexByte(alphabet, mac[len(mac)-1])^1]

	tests := []struct{ name, id string }{
		{"empty", ""},
		{"no dots", strings.ReplaceAll(id, ".", "")},
		{"other secret", NewSigner([]byte("other secret")).ClickID(testEmailID, 5)},
		{"mac first char", testEmailID + ".5." + flip(mac, 0)},
		{"mac last char", testEmailID + ".5." + flip(mac, len(mac)-1)},
		{"mac padding bits", testEmailID + ".5." + string(lastPad)},
		{"mac truncated", id[:len(id)-1]},
		{"mac extended", id + "A"},
		{"mac padded", id + "=="},
		{"mac with newline", id[:len(id)-3] + "\n" + id[len(id)-3:]},
		{"mac with CRLF", id[:len(id)-3] + "\r\n" + id[len(id)-3:]},
		{"mac empty", testEmailID + ".5."},
		{"mac of other index", testEmailID + ".6." + mac},
		{"index leading zero", testEmailID + ".05." + mac},
		{"index plus sign", testEmailID + ".+5." + mac},
		{"index negative", testEmailID + ".-5." + mac},
		{"index empty", testEmailID + ".." + mac},
		{"index overflow", testEmailID + ".99999999999999999999999." + mac},
		{"email changed", flip(testEmailID, 5) + ".5." + mac},
		{"email truncated", testEmailID[1:] + ".5." + mac},
		{"email empty", ".5." + mac},
		{"email extended", testEmailID + "x.5." + mac},
		{"extra field", testEmailID + ".5." + mac + ".1"},
		{"too long", strings.Repeat("a", 300) + ".5." + mac},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if email, index, ok := s.ParseClickID(tt.id); ok || email != "" || index != 0 {
				t.Errorf("ParseClickID(%q) = %q, %d, %v; want rejection", tt.id, email, index, ok)
			}
		})
	}
}

func TestSignerCopiesSecret(t *testing.T) {
	secret := []byte("secret")
	s := NewSigner(secret)
	id := s.ClickID(testEmailID, 1)
	secret[0] = 'X'
	if _, _, ok := s.ParseClickID(id); !ok {
		t.Error("changing the caller's slice changed the signer")
	}
}

func TestSignerConcurrent(t *testing.T) {
	s := NewSigner([]byte("secret"))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 100 {
				if _, idx, ok := s.ParseClickID(s.ClickID(testEmailID, i*100+j)); !ok || idx != i*100+j {
					t.Errorf("round trip of %d failed", i*100+j)
				}
			}
		})
	}
	wg.Wait()
}

func TestUnsubscribeID(t *testing.T) {
	s := NewSigner([]byte("secret"))
	id := s.UnsubscribeID("acct_a", "ct_b", "em_c")
	a, c, e, ok := s.ParseUnsubscribeID(id)
	if !ok || a != "acct_a" || c != "ct_b" || e != "em_c" {
		t.Fatalf("%q: %q %q %q %v", id, a, c, e, ok)
	}
	click := s.ClickID("em_c", 0)
	for _, bad := range []string{
		"", id + "x", strings.Replace(id, "ct_b", "ct_x", 1), strings.Replace(id, "acct_a", "acct_x", 1),
		NewSigner([]byte("other")).UnsubscribeID("acct_a", "ct_b", "em_c"),
		"acct_a.ct_b." + click, // a click MAC is not an unsubscribe MAC
		"acct_a.ct_b.em_c.d.e",
	} {
		if _, _, _, ok := s.ParseUnsubscribeID(bad); ok {
			t.Errorf("%q verified", bad)
		}
	}
}

// TestIDsCarryHMACSHA256: the MAC of each kind of id is the first 16 bytes
// of HMAC-SHA256 of "pigeonpost <purpose>\x00" and the parts joined by
// NUL, computed here with crypto/hmac alone, so that the pooled HMACs of
// the Signer mint the ids that every link already sent carries; with the
// older secret too, and from several goroutines at once.
func TestIDsCarryHMACSHA256(t *testing.T) {
	newKey, oldKey := []byte("the new secret"), []byte("the old secret")
	mac := func(key []byte, purpose string, parts ...string) string {
		h := hmac.New(sha256.New, key)
		h.Write([]byte("pigeonpost " + purpose + "\x00" + strings.Join(parts, "\x00")))
		return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:16])
	}
	dest := "https://shop.example.com/offer?id=7&utm_source=news"
	d := base64.RawURLEncoding.EncodeToString([]byte(dest))
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			s := NewSigner(newKey, oldKey)
			for i := range 50 {
				idx := strconv.Itoa(i)
				if got, want := s.SealedClickID("acc_1", "em_1", i, dest), "em_1."+idx+".acc_1."+d+"."+mac(newKey, "click v2", "em_1", idx, "acc_1", dest); got != want {
					t.Errorf("SealedClickID = %q, want %q", got, want)
				}
				if got, want := s.PreviewClickID("acc_1", "em_1", i, dest), "em_1."+idx+".acc_1."+d+"."+mac(newKey, "click preview", "em_1", idx, "acc_1", dest); got != want {
					t.Errorf("PreviewClickID = %q, want %q", got, want)
				}
				if got, want := s.ClickID("em_1", i), "em_1."+idx+"."+mac(newKey, "click v1", "em_1", idx); got != want {
					t.Errorf("ClickID = %q, want %q", got, want)
				}
			}
			if got, want := s.FeedbackID("em_1"), "em_1."+mac(newKey, "feedback v1", "em_1"); got != want {
				t.Errorf("FeedbackID = %q, want %q", got, want)
			}
			if got, want := s.UnsubscribeID("acc_1", "ct_1", "em_1"), "acc_1.ct_1.em_1."+mac(newKey, "unsubscribe v1", "acc_1", "ct_1", "em_1"); got != want {
				t.Errorf("UnsubscribeID = %q, want %q", got, want)
			}
			old := "em_1.3.acc_1." + d + "." + mac(oldKey, "click v2", "em_1", "3", "acc_1", dest)
			if c, ok := s.ParseClick(old); !ok || c.Dest != dest || c.Index != 3 {
				t.Errorf("ParseClick of an id made with the older secret: %+v, %v", c, ok)
			}
		})
	}
	wg.Wait()
}
