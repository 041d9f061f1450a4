package dkim

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"testing"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
)

func benchSign(b *testing.B, pemKey string, msg []byte) {
	s, err := NewSigner("bench.test", "pigeonpost", pemKey)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Sign(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDKIMSign signs with the RSA-2048 key that domains get
// (GenerateKey): one private-key operation per message plus hashing the body.
func BenchmarkDKIMSign(b *testing.B) {
	priv, _, err := GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	b.Run("RSA2048/10KB", func(b *testing.B) { benchSign(b, priv, testkit.LoadMessage(10240, 20)) })
	b.Run("RSA2048/1MB", func(b *testing.B) { benchSign(b, priv, testkit.LoadMessage(1<<20, 20)) })
}

// BenchmarkDKIMSignEd25519 is the reference for the cost of the RSA
// operation: the same message signed with an Ed25519 key.
func BenchmarkDKIMSignEd25519(b *testing.B) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		b.Fatal(err)
	}
	priv := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	b.Run("10KB", func(b *testing.B) { benchSign(b, priv, testkit.LoadMessage(10240, 20)) })
}

// BenchmarkNewDKIMSigner is the cost the worker's signer cache saves: parsing
// the PEM key of the domain.
func BenchmarkNewDKIMSigner(b *testing.B) {
	priv, _, err := GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewSigner("bench.test", "pigeonpost", priv); err != nil {
			b.Fatal(err)
		}
	}
}
