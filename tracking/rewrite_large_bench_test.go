package tracking

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// largeBenchMessage returns the message of `make bench` workloads: a single
// 7bit text/html part of about size bytes with `links` links spread through
// it (like cmd/smtpload builds it).
func largeBenchMessage(size, links int) []byte {
	var b strings.Builder
	b.WriteString("From: Loadgen <bench@bench.test>\r\nTo: rcpt@example.net\r\nSubject: loadgen message 1\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n" +
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

func benchRewriteSinglePart(b *testing.B, size int) {
	msg := largeBenchMessage(size, 20)
	opts := Options{
		Opens:    true,
		Clicks:   true,
		PixelURL: "http://127.0.0.1:8080/v1/track/open/em_aaaaaaaaaaaaaaaaaaaaaaaaaa",
		ClickURL: func(i int, _ string) string {
			return fmt.Sprintf("http://127.0.0.1:8080/v1/track/click/em_aaaaaaaaaaaaaaaaaaaaaaaaaa.%d.sigsigsigsigsigsigsig", i)
		},
	}
	var out bytes.Buffer
	res, err := Rewrite(&out, bytes.NewReader(msg), opts)
	if err != nil || len(res.Links) != 20 {
		b.Fatalf("bad benchmark message: %d bytes, %d links, %v", len(msg), len(res.Links), err)
	}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		out.Reset()
		if _, err := Rewrite(&out, bytes.NewReader(msg), opts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRewrite1MB20Links: workload c's message (1 MB single-part 7bit
// HTML, 20 links), opens and clicks.
func BenchmarkRewrite1MB20Links(b *testing.B) { benchRewriteSinglePart(b, 1<<20) }

// BenchmarkRewriteSinglePart10KB20Links: workload a's message (10 KB
// single-part 7bit HTML, 20 links); BenchmarkRewrite10KB20Links is the
// multipart quoted-printable variant.
func BenchmarkRewriteSinglePart10KB20Links(b *testing.B) { benchRewriteSinglePart(b, 10240) }
