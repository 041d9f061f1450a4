package deliver

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-msgauth/dkim"
)

// dkimHeaderKeys are the header fields signed when present, in this order.
var dkimHeaderKeys = []string{
	"From", "To", "Cc", "Subject", "Date", "Message-ID", "Reply-To",
	"MIME-Version", "Content-Type", "Content-Transfer-Encoding", "List-Unsubscribe",
}

// GenerateKey creates an RSA-2048 DKIM key: PEM (PKCS#8) of the private key
// and the TXT record value "v=DKIM1; k=rsa; p=<base64 DER SPKI>".
func GenerateKey() (privatePEM string, txtValue string, err error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", "", fmt.Errorf("dkim: generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", fmt.Errorf("dkim: marshal private key: %w", err)
	}
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return "", "", fmt.Errorf("dkim: marshal public key: %w", err)
	}
	privatePEM = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	txtValue = "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(spki)
	return privatePEM, txtValue, nil
}

// DKIMSigner signs messages for one domain. It is safe for concurrent use.
type DKIMSigner struct {
	domain   string
	selector string
	key      crypto.Signer
}

// NewDKIMSigner parses privatePEM (PKCS#8 "PRIVATE KEY", or PKCS#1
// "RSA PRIVATE KEY"; RSA of at least 1024 bits or Ed25519) and returns a
// signer publishing d=domain, s=selector.
func NewDKIMSigner(domain, selector, privatePEM string) (*DKIMSigner, error) {
	domain = strings.TrimSuffix(strings.TrimSpace(domain), ".")
	selector = strings.TrimSpace(selector)
	if domain == "" || selector == "" {
		return nil, errors.New("dkim: domain and selector are required")
	}
	block, _ := pem.Decode([]byte(privatePEM))
	if block == nil {
		return nil, errors.New("dkim: private key is not PEM")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("dkim: unsupported PEM block %q", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("dkim: parse private key: %w", err)
	}
	var signer crypto.Signer
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if k.N.BitLen() < 1024 {
			return nil, fmt.Errorf("dkim: RSA key too short (%d bits)", k.N.BitLen())
		}
		signer = k
	case ed25519.PrivateKey:
		signer = k
	default:
		return nil, fmt.Errorf("dkim: unsupported key type %T", key)
	}
	return &DKIMSigner{domain: domain, selector: selector, key: signer}, nil
}

// Sign returns the DKIM-Signature header field (with trailing CRLF) for the
// CRLF-normalised message msg; callers prepend it. Bare LFs in msg are
// treated as CRLF, matching what the SMTP client puts on the wire.
// Canonicalization is relaxed/relaxed, the algorithm rsa-sha256 (or
// ed25519-sha256 for an Ed25519 key), and the fields From, To, Cc, Subject,
// Date, Message-ID, Reply-To, MIME-Version, Content-Type,
// Content-Transfer-Encoding and List-Unsubscribe are signed when present
// (every instance of each).
func (s *DKIMSigner) Sign(msg []byte) (string, error) {
	msg = toCRLF(msg)
	keys := presentHeaderKeys(msg)
	if len(keys) == 0 || !strings.EqualFold(keys[0], "From") {
		return "", errors.New("dkim: message has no From header field")
	}
	signer, err := dkim.NewSigner(&dkim.SignOptions{
		Domain:                 s.domain,
		Selector:               s.selector,
		Signer:                 s.key,
		Hash:                   crypto.SHA256,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed,
		BodyCanonicalization:   dkim.CanonicalizationRelaxed,
		HeaderKeys:             keys,
	})
	if err != nil {
		return "", fmt.Errorf("dkim: %w", err)
	}
	if _, err := signer.Write(msg); err != nil {
		signer.Close()
		return "", fmt.Errorf("dkim: %w", err)
	}
	if err := signer.Close(); err != nil {
		return "", fmt.Errorf("dkim: %w", err)
	}
	return signer.Signature(), nil
}

// presentHeaderKeys lists the fields of dkimHeaderKeys present in the header
// of msg, each repeated once per instance, in dkimHeaderKeys order.
func presentHeaderKeys(msg []byte) []string {
	counts := make(map[string]int)
	for len(msg) > 0 {
		line := msg
		if i := bytes.IndexByte(msg, '\n'); i >= 0 {
			line, msg = msg[:i], msg[i+1:]
		} else {
			msg = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			break // end of header
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue // folded continuation
		}
		if i := bytes.IndexByte(line, ':'); i > 0 {
			counts[strings.ToLower(strings.TrimRight(string(line[:i]), " \t"))]++
		}
	}
	var keys []string
	for _, k := range dkimHeaderKeys {
		for range counts[strings.ToLower(k)] {
			keys = append(keys, k)
		}
	}
	return keys
}

// toCRLF turns bare LFs into CRLF; msg is returned unchanged if it has none.
func toCRLF(msg []byte) []byte {
	bare := 0
	for i, c := range msg {
		if c == '\n' && (i == 0 || msg[i-1] != '\r') {
			bare++
		}
	}
	if bare == 0 {
		return msg
	}
	out := make([]byte, 0, len(msg)+bare)
	for i, c := range msg {
		if c == '\n' && (i == 0 || msg[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	return out
}
