package smtpd

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/membudget"
	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/dkim"
	"github.com/pigeonpost/pigeonpost/pipeline/pipelinetest"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// BenchmarkDataToQueued is bench workload c in one process: a 1 MB message
// with 20 links and open and click tracking, from the DATA command (or BDAT)
// to the 250, through the real server, the real pipeline and a real
// redis-server (testkit.StartRedis, appendfsync always), on one implicit-TLS
// connection. msg=load is the message cmd/smtpload sends (one 7bit HTML
// part); msg=newsletter a multipart/related newsletter with its images
// (testkit.NewsletterMessage); msg=load10K the 10 KB message of workloads a
// and b. /msgid gives each message a Message-ID line of its own, as
// cmd/smtpload and real clients do (the idempotency claim then runs).
// cpu-ms/op is the CPU time of the whole process a message (client and
// server, not redis-server); ns/op waits for the fsync of redis-server too;
// submit-ms/op is the part of it spent in Pipeline.Submit, after the
// message was read (the rest is the commands, reading DATA and the reply).
func BenchmarkDataToQueued(b *testing.B) {
	track := []string{"X-SP-Track-Opens: true", "X-SP-Track-Clicks: true"}
	for _, m := range []struct {
		name string
		msg  []byte
	}{
		{"load", testkit.LoadMessage(1<<20, 20, track...)},
		{"newsletter", testkit.NewsletterMessage(1<<20, 20, track...)},
		{"load10K", testkit.LoadMessage(10240, 20, track...)},
	} {
		for _, msgid := range []bool{false, true} {
			for _, via := range []string{"DATA", "BDAT"} {
				name := "msg=" + m.name + "/via=" + via
				if msgid && via == "BDAT" {
					continue // BDAT's length is the message's
				}
				if msgid {
					name += "/msgid"
				}
				b.Run(name, func(b *testing.B) {
					c := startBenchServer(b)
					var wire []byte
					if via == "DATA" {
						wire = append(dotStuff(m.msg), ".\r\n"...)
					} else {
						wire = append([]byte("BDAT "+strconv.Itoa(len(m.msg))+" LAST\r\n"), m.msg...)
					}
					b.SetBytes(int64(len(m.msg)))
					b.ReportAllocs()
					cpu := cpuTime()
					c.submit.Store(0)
					var id []byte
					for b.Loop() {
						if msgid {
							id = fmt.Appendf(id[:0], "Message-ID: <%d@bench.test>\r\n", time.Now().UnixNano())
						}
						c.send(b, via, id, wire)
					}
					b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/1000/float64(b.N), "cpu-ms/op")
					b.ReportMetric(float64(c.submit.Load())/1e6/float64(b.N), "submit-ms/op")
				})
			}
		}
	}
}

// cpuTime is the CPU time, user and system, of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// dotStuff doubles the dot that starts a line, as a DATA client does.
func dotStuff(msg []byte) []byte {
	out := bytes.ReplaceAll(msg, []byte("\r\n."), []byte("\r\n.."))
	if bytes.HasPrefix(out, []byte(".")) {
		out = append([]byte("."), out...)
	}
	return out
}

type benchClient struct {
	submit *atomic.Int64 // ns spent in Submit, by timedPipeline
	conn   *tls.Conn
	r      *bufio.Reader
	head   string // MAIL and RCPT, pipelined
}

// startBenchServer serves the real pipeline on a fresh redis-server, with
// bench.test verified (with an RSA-2048 DKIM key) for a live key, and
// returns an authenticated connection to it.
func startBenchServer(b *testing.B) *benchClient {
	b.Helper()
	parts := pipelinetest.New(b, pipelinetest.Options{Pipeline: pipeline.Options{CacheTTL: 5 * time.Second}})
	const secret = "sp_live_benchbenchbenchbenchbench0001"
	key := parts.Key(b, "bench", secret)
	priv, txt, err := dkim.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now().UTC()
	if err := parts.Store.PutDomain(context.Background(), key.AccountID, &store.Domain{
		ID: store.NewID("dom"), Name: "bench.test", Status: "verified", Selector: "pigeonpost",
		PrivateKeyPEM: priv, CreatedAt: now, VerifiedAt: &now,
		DNSRecords: []store.DNSRecord{{Type: "TXT", Name: "pigeonpost._domainkey.bench.test", Value: txt, Status: "verified", Required: true}},
	}); err != nil {
		b.Fatal(err)
	}
	cert, err := testkit.SelfSignedCert("127.0.0.1")
	if err != nil {
		b.Fatal(err)
	}
	const maxMsg = 10 << 20
	timed := &timedPipeline{Pipeline: parts.Pipeline}
	srv := New(timed, Options{
		Hostname:        "gw.test",
		MaxMessageBytes: maxMsg,
		MaxRecipients:   10,
		MaxConnections:  10,
		ReadTimeout:     time.Minute,
		WriteTimeout:    time.Minute,
		DataTimeout:     time.Minute,
		TLSConfig:       &tls.Config{Certificates: []tls.Certificate{cert}},
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
		Budget:          membudget.New(8*pipeline.MessageCost(maxMsg), pipeline.MessageCost(maxMsg), 0),
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.ServeTLS(ln) })
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		wg.Wait()
	})
	conn, err := tls.Dial("tcp", ln.Addr().String(), testkit.InsecureTLS())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	c := &benchClient{submit: &timed.ns, conn: conn, r: bufio.NewReaderSize(conn, 4096),
		head: "MAIL FROM:<bench@bench.test>\r\nRCPT TO:<rcpt@example.net>\r\n"}
	c.expect(b, "220 ")
	c.write(b, "EHLO client.test\r\n")
	c.expect(b, "250 ")
	c.write(b, "AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00apikey\x00"+secret))+"\r\n")
	c.expect(b, "235 ")
	return c
}

// timedPipeline adds up the time spent in Submit.
type timedPipeline struct {
	Pipeline
	ns atomic.Int64
}

func (p *timedPipeline) Submit(ctx context.Context, sub pipeline.Submission) (*pipeline.Receipt, error) {
	t := time.Now()
	defer func() { p.ns.Add(int64(time.Since(t))) }()
	return p.Pipeline.Submit(ctx, sub)
}

// send runs one transaction: wire is the dot-stuffed message and its final
// dot (via DATA) or the BDAT LAST command and the message; id, when not
// empty, is a Message-ID line to send first (via DATA only).
func (c *benchClient) send(b *testing.B, via string, id, wire []byte) {
	if via == "DATA" {
		c.write(b, c.head+"DATA\r\n")
		c.expect(b, "250 ")
		c.expect(b, "250 ")
		c.expect(b, "354 ")
		if _, err := c.conn.Write(id); err != nil {
			b.Fatal(err)
		}
	} else {
		c.write(b, c.head)
		c.expect(b, "250 ")
		c.expect(b, "250 ")
	}
	if _, err := c.conn.Write(wire); err != nil {
		b.Fatal(err)
	}
	c.expect(b, "250 2.0.0 Ok: queued as em_")
}

func (c *benchClient) write(b *testing.B, s string) {
	if _, err := io.WriteString(c.conn, s); err != nil {
		b.Fatal(err)
	}
}

// expect reads one reply and fails unless its last line starts with prefix.
func (c *benchClient) expect(b *testing.B, prefix string) {
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			b.Fatalf("reply %q: %v", line, err)
		}
		if len(line) < 4 || line[3] != '-' {
			if !strings.HasPrefix(line, prefix) {
				b.Fatalf("reply %q, want %q…", line, prefix)
			}
			return
		}
	}
}
