package tracking

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
)

func benchRewriteSinglePart(b *testing.B, size int) {
	msg := testkit.LoadMessage(size, 20)
	opts := Options{
		Opens:    true,
		Clicks:   true,
		PixelURL: "http://127.0.0.1:8080/v1/track/open/em_aaaaaaaaaaaaaaaaaaaaaaaaaa",
		ClickURL: func(i int, _ string) string {
			return fmt.Sprintf("http://127.0.0.1:8080/v1/track/click/em_aaaaaaaaaaaaaaaaaaaaaaaaaa.%d.sigsigsigsigsigsigsig", i)
		},
	}
	benchRewrite(b, msg, opts, func(res Result) bool { return len(res.Links) == 20 })
}

// benchRewrite measures Rewrite of msg with opts, after checking with ok
// that a first rewrite is the one the benchmark means.
func benchRewrite(b *testing.B, msg []byte, opts Options, ok func(Result) bool) {
	var out bytes.Buffer
	res, err := Rewrite(&out, bytes.NewReader(msg), opts)
	if err != nil || !ok(res) {
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

// BenchmarkRewriteNewsletter1MB: a 1 MB newsletter with its images
// (testkit.NewsletterMessage: quoted-printable HTML, 20 links, four inline
// base64 images), opens and clicks.
func BenchmarkRewriteNewsletter1MB(b *testing.B) {
	msg := testkit.NewsletterMessage(1<<20, 20)
	benchRewrite(b, msg, goldenOpts(), func(res Result) bool { return len(res.Links) == 20 && res.Changed })
}
