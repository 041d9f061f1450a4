package deliver

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-msgauth/dkim"
)

var (
	testKeyOnce sync.Once
	testKeyPEM  string
	testKeyTXT  string
	testKeyErr  error
)

// testKey generates one RSA key for the whole test binary (it is slow).
func testKey(t *testing.T) (string, string) {
	t.Helper()
	testKeyOnce.Do(func() { testKeyPEM, testKeyTXT, testKeyErr = GenerateKey() })
	if testKeyErr != nil {
		t.Fatal(testKeyErr)
	}
	return testKeyPEM, testKeyTXT
}

const testMessage = `From: Alice <alice@example.test>
To: bob@dest.test
Subject: Hello
Date: Mon, 02 Jan 2006 15:04:05 +0000
Message-ID: <1@example.test>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
X-Unsigned: whatever

Hello Bob,
  spaced   line  
.dot line
`

func verifyDKIM(t *testing.T, txt string, msg []byte) []*dkim.Verification {
	t.Helper()
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(msg), &dkim.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) {
			if name != "sel1._domainkey.example.test" {
				return nil, fmt.Errorf("unexpected lookup %q", name)
			}
			return []string{txt}, nil
		},
	})
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if len(vs) != 1 {
		t.Fatalf("%d verifications, want 1", len(vs))
	}
	return vs
}

func TestDKIMRoundTrip(t *testing.T) {
	keyPEM, txt := testKey(t)
	if !strings.HasPrefix(keyPEM, "-----BEGIN PRIVATE KEY-----") {
		t.Fatalf("key is not PKCS#8 PEM: %.40q", keyPEM)
	}
	if !strings.HasPrefix(txt, "v=DKIM1; k=rsa; p=") {
		t.Fatalf("TXT value %q", txt)
	}
	s, err := NewDKIMSigner("example.test", "sel1", keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	msg := crlf(testMessage)
	sig, err := s.Sign(msg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sig, "DKIM-Signature:") || !strings.HasSuffix(sig, "\r\n") {
		t.Fatalf("signature field %q", sig)
	}
	for _, want := range []string{"a=rsa-sha256", "c=relaxed/relaxed", "d=example.test", "s=sel1"} {
		if !strings.Contains(sig, want) {
			t.Errorf("signature lacks %q: %s", want, sig)
		}
	}
	signed := append([]byte(sig), msg...)

	v := verifyDKIM(t, txt, signed)[0]
	if v.Err != nil {
		t.Fatalf("verification failed: %v", v.Err)
	}
	if v.Domain != "example.test" {
		t.Errorf("domain %q", v.Domain)
	}
	// Only present fields are signed.
	var got []string
	for _, k := range v.HeaderKeys {
		got = append(got, strings.ToLower(k))
	}
	want := "from to subject date message-id mime-version content-type"
	if strings.Join(got, " ") != want {
		t.Errorf("signed fields %q, want %q", got, want)
	}

	// Relaxed canonicalization tolerates whitespace changes in the body...
	relaxed := bytes.Replace(signed, []byte("spaced   line  "), []byte("spaced line"), 1)
	if v := verifyDKIM(t, txt, relaxed)[0]; v.Err != nil {
		t.Errorf("relaxed change broke the signature: %v", v.Err)
	}
	// ...and an unsigned field can be added.
	extra := append([]byte("X-Added: yes\r\n"), signed...)
	if v := verifyDKIM(t, txt, extra)[0]; v.Err != nil {
		t.Errorf("unsigned header broke the signature: %v", v.Err)
	}

	// Tampering with the body or a signed field breaks it.
	for name, tampered := range map[string][]byte{
		"body":    bytes.Replace(signed, []byte("Hello Bob"), []byte("Hello Eve"), 1),
		"subject": bytes.Replace(signed, []byte("Subject: Hello"), []byte("Subject: Hellö"), 1),
	} {
		if v := verifyDKIM(t, txt, tampered)[0]; v.Err == nil {
			t.Errorf("%s tamper: verification passed", name)
		}
	}
}

func TestDKIMSignBareLF(t *testing.T) {
	keyPEM, txt := testKey(t)
	s, err := NewDKIMSigner("example.test.", "sel1", keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := s.Sign([]byte(testMessage)) // LF only
	if err != nil {
		t.Fatal(err)
	}
	// The wire form is CRLF.
	signed := append([]byte(sig), crlf(testMessage)...)
	if v := verifyDKIM(t, txt, signed)[0]; v.Err != nil {
		t.Fatalf("verification failed: %v", v.Err)
	}
}

func TestDKIMErrors(t *testing.T) {
	keyPEM, _ := testKey(t)
	for name, tc := range map[string]struct{ domain, selector, pem string }{
		"no domain":   {"", "sel1", keyPEM},
		"no selector": {"example.test", "", keyPEM},
		"not pem":     {"example.test", "sel1", "garbage"},
		"cert pem":    {"example.test", "sel1", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"},
		"bad der":     {"example.test", "sel1", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"},
	} {
		if _, err := NewDKIMSigner(tc.domain, tc.selector, tc.pem); err == nil {
			t.Errorf("%s: NewDKIMSigner succeeded", name)
		}
	}

	s, err := NewDKIMSigner("example.test", "sel1", keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sign(crlf("To: bob@dest.test\nSubject: no from\n\nbody\n")); err == nil {
		t.Error("Sign without From succeeded")
	}
}

func TestPresentHeaderKeys(t *testing.T) {
	msg := crlf("from: a@x\nTo: b@y\n  folded: not a field\nTo: c@z\nX-Other: 1\nList-Unsubscribe: <mailto:u@x>\n\nCc: in body\n")
	got := strings.Join(presentHeaderKeys(msg), " ")
	if want := "From To To List-Unsubscribe"; got != want {
		t.Fatalf("presentHeaderKeys = %q, want %q", got, want)
	}
}
