package dkim

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	msgdkim "github.com/emersion/go-msgauth/dkim"
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

func verifyDKIM(t *testing.T, txt string, msg []byte) []*msgdkim.Verification {
	t.Helper()
	vs, err := msgdkim.VerifyWithOptions(bytes.NewReader(msg), &msgdkim.VerifyOptions{
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
	s, err := NewSigner("example.test", "sel1", keyPEM)
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
	s, err := NewSigner("example.test.", "sel1", keyPEM)
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
		if _, err := NewSigner(tc.domain, tc.selector, tc.pem); err == nil {
			t.Errorf("%s: NewSigner succeeded", name)
		}
	}

	s, err := NewSigner("example.test", "sel1", keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sign(crlf("To: bob@dest.test\nSubject: no from\n\nbody\n")); err == nil {
		t.Error("Sign without From succeeded")
	}
}

func TestSignedKeys(t *testing.T) {
	header, _ := splitMessage(crlf("from: a@x\nTo: b@y\n  folded: not a field\nTo: c@z\nX-Other: 1\nList-Unsubscribe: <mailto:u@x>\n\nCc: in body\n"))
	got := strings.Join(signedKeys(headerFields(header)), " ")
	if want := "From To To List-Unsubscribe"; got != want {
		t.Fatalf("signedKeys = %q, want %q", got, want)
	}
}

// TestDKIMRelaxedBody pins the body canonicalisation on the cases where it
// changes something, against go-msgauth's signer, and checks that the
// signature verifies.
func TestDKIMRelaxedBody(t *testing.T) {
	for _, body := range []string{
		"",
		"\r\n",
		"  \r\n\t\r\n",
		"no final newline",
		"trailing space  \r\n",
		"tab\tand  two  spaces\r\n",
		" leading space\r\n\tleading tab\r\n",
		"empty lines at the end\r\n\r\n\r\n",
		"white space lines at the end\r\n \r\n\t\r\n",
		"empty line\r\n\r\nin the middle\r\n",
		"bare\rCR\r\n",
		"space before a bare \rCR \r\n",
		"CRs before the end\r\r\r\nnext\r\n",
		"bare CR at the end\r",
		"bare LF\nand CRLF\r\n",
		".dot\r\n..two\r\n",
		"<table>\r\n  <tr>\r\n\t<td>a</td>  \r\n  </tr>\r\n</table>\r\n",
		"clean\r\nclean\r\nspace at the end \r\nclean\r\nclean\r\ntab\tfar below\r\n",
		"two  spaces\r\nbare\rCR\r\nand\ta tab after\r\n  \r\nend",
	} {
		msg := "From: a@example.test\r\nSubject: s\r\n\r\n" + body
		if !checkAgainstGoMsgauth(t, []byte(msg)) {
			t.Errorf("go-msgauth could not sign %q", msg)
		}
	}
}

// FuzzDKIMSign: for any message go-msgauth can sign, our body hash is its
// body hash and go-msgauth verifies our signature.
func FuzzDKIMSign(f *testing.F) {
	f.Add([]byte(testMessage))
	f.Add([]byte("From: a@x\r\nTo: b@y\r\nTo: c@z\r\nSubject: folded\r\n  twice\r\n\r\nbody  \t \r\n\r\n"))
	f.Add([]byte("From:a@x\nsubject :  x\n\n\r \r\n\t\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		checkAgainstGoMsgauth(t, msg)
	})
}

var (
	edKeyOnce sync.Once
	edSigner  *Signer
	edTXT     string
)

// checkAgainstGoMsgauth signs msg with an Ed25519 key (fast enough to
// fuzz) and compares with go-msgauth, when go-msgauth can sign it (it
// reports whether it could).
func checkAgainstGoMsgauth(t *testing.T, msg []byte) bool {
	t.Helper()
	edKeyOnce.Do(func() {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			panic(err)
		}
		edSigner, err = NewSigner("example.test", "sel1", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))
		if err != nil {
			panic(err)
		}
		edTXT = "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)
	})
	header, _ := splitMessage(toCRLF(msg))
	keys := signedKeys(headerFields(header))
	ours, err := edSigner.Sign(msg)
	if len(keys) == 0 || keys[0] != "From" {
		if err == nil {
			t.Fatalf("signed a message without From: %q", msg)
		}
		return false
	}
	ref, refErr := msgdkim.NewSigner(&msgdkim.SignOptions{
		Domain:                 "example.test",
		Selector:               "sel1",
		Signer:                 edSigner.key,
		HeaderCanonicalization: msgdkim.CanonicalizationRelaxed,
		BodyCanonicalization:   msgdkim.CanonicalizationRelaxed,
		HeaderKeys:             keys,
	})
	if refErr == nil {
		ref.Write(msg)
		refErr = ref.Close()
	}
	if refErr != nil {
		return false // go-msgauth cannot sign it either (no From, no header end)
	}
	if err != nil {
		t.Fatalf("Sign: %v (go-msgauth signed it)", err)
	}
	if got, want := tagValue(ours, "bh"), tagValue(ref.Signature(), "bh"); got != want {
		t.Fatalf("bh=%s, go-msgauth's bh=%s, message %q", got, want, msg)
	}
	signed := append([]byte(ours), toCRLF(msg)...)
	vs, err := msgdkim.VerifyWithOptions(bytes.NewReader(signed), &msgdkim.VerifyOptions{
		LookupTXT: func(string) ([]string, error) { return []string{edTXT}, nil },
	})
	if err != nil || len(vs) != 1 || vs[0].Err != nil {
		t.Fatalf("go-msgauth does not verify our signature: %v %+v\nsignature %q\nmessage %q", err, vs, ours, msg)
	}
	return true
}

// tagValue returns the value of tag in a DKIM-Signature field, folding
// white space removed.
func tagValue(field, tag string) string {
	_, rest, _ := strings.Cut(field, ":")
	for _, t := range strings.Split(rest, ";") {
		k, v, _ := strings.Cut(t, "=")
		if strings.TrimSpace(k) == tag {
			return strings.Join(strings.Fields(v), "")
		}
	}
	return ""
}

// TestDKIMSignatureLayout: the field stays within 78 columns per line and
// the b= value is what the verifier strips.
func TestDKIMSignatureLayout(t *testing.T) {
	keyPEM, _ := testKey(t)
	s, err := NewSigner("a-rather-long-domain-name.example.test", "selector2026", keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	msg := crlf("From: a@x\nTo: b@y\nCc: c@z\nSubject: s\nDate: d\nMessage-ID: <m@x>\nReply-To: r@x\nMIME-Version: 1.0\nContent-Type: text/plain\nContent-Transfer-Encoding: 7bit\nList-Unsubscribe: <mailto:u@x>\n\nbody\n")
	sig, err := s.sign(msg, time.Unix(1700000000, 0))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSuffix(sig, "\r\n"), "\r\n") {
		if len(line) > 78 {
			t.Errorf("line of %d columns: %q", len(line), line)
		}
	}
	if got := tagValue(sig, "h"); got != "From:To:Cc:Subject:Date:Message-ID:Reply-To:MIME-Version:Content-Type:Content-Transfer-Encoding:List-Unsubscribe" {
		t.Errorf("h=%s", got)
	}
	if got := tagValue(sig, "t"); got != "1700000000" {
		t.Errorf("t=%s", got)
	}
	if got := tagValue(sig, "b"); len(got) != 344 { // RSA-2048: 256 bytes in base64
		t.Errorf("b= has %d characters: %q", len(got), got)
	}
}

// crlf turns a readable multi-line literal into a CRLF message.
func crlf(s string) []byte {
	return []byte(strings.ReplaceAll(s, "\n", "\r\n"))
}
