package deliver

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
	"testing"
)

// benchDKIMMessage returns a message like the one cmd/smtpload sends: headers
// plus an HTML body of about size bytes with `links` links, CRLF lines.
func benchDKIMMessage(size, links int) []byte {
	var b strings.Builder
	b.WriteString("From: Loadgen <bench@bench.test>\r\nTo: rcpt@example.net\r\nSubject: loadgen message 1\r\n" +
		"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1.2.3@loadgen.bench>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n" +
		"<!DOCTYPE html>\r\n<html><body>\r\n")
	start := b.Len()
	every := max(size/(links+1), 1)
	next, n := every, 0
	for b.Len()-start < size {
		b.WriteString("<p>lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor</p>\r\n")
		if n < links && b.Len()-start >= next {
			fmt.Fprintf(&b, "<a href=\"https://www.example.com/offer/%04d?utm_source=bench\">offer %04d</a>\r\n", n, n)
			n++
			next += every
		}
	}
	b.WriteString("</body></html>\r\n")
	return []byte(b.String())
}

func benchSign(b *testing.B, pemKey string, msg []byte) {
	s, err := NewDKIMSigner("bench.test", "pigeonpost", pemKey)
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
	b.Run("RSA2048/10KB", func(b *testing.B) { benchSign(b, priv, benchDKIMMessage(10240, 20)) })
	b.Run("RSA2048/1MB", func(b *testing.B) { benchSign(b, priv, benchDKIMMessage(1<<20, 20)) })
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
	b.Run("10KB", func(b *testing.B) { benchSign(b, priv, benchDKIMMessage(10240, 20)) })
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
		if _, err := NewDKIMSigner("bench.test", "pigeonpost", priv); err != nil {
			b.Fatal(err)
		}
	}
}
