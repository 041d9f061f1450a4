// Command driver is pigeonpost's end-to-end test: it starts the real stack
// on loopback (redis-server on a unix socket, a DNS server and a downstream
// SMTP sink in this process, bin/pigeonpost serve), verifies a sending domain
// through the REST API, then sends with each client users run (swaks,
// smtplib, Nodemailer, the mail gem, Symfony Mailer, PHPMailer, net/smtp)
// and checks what reached the sink and what the API reports; then drives
// the sends API with curl (templates, a send, a batch, the one-click
// unsubscribe); then drives the dashboard in chromium (dashboard.go); then
// runs the webhook signature checks of docs/webhooks
// against a webhook the gateway sent, and replays and redelivers it.
//
// It prints one line per client and check and ends with "N passed, M
// failed"; it exits 1 when anything failed. Run it through e2e/run.sh
// (make e2e), which builds it and the net/smtp client first.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/testkit/dnsserver"
)

const (
	apiKey       = "sp_live_e2e0000000000000000000000000001"
	wrongKey     = "sp_live_e2e9999999999999999999999999999"
	senderDomain = "acme.test"
	rcptDomain   = "example.test"
	sender       = "hello@" + senderDomain
	unverified   = "hello@unverified.test"
	publicURL    = "https://track.gateway.test"

	// What every client snippet sends.
	wantFromName = "Acme Café"
	wantToName   = "Zoë Tester"
	wantSubject  = "Your invoice — Café ✓"
	wantHeading  = "<h1>Hello Zoë</h1>"
	wantLink     = "https://acme.test/account?ref=e2e&lang=fr"

	clientTimeout   = 60 * time.Second
	negativeMaxTime = 20 * time.Second // a refusal must come back this fast: no hang
)

func main() {
	root := flag.String("root", ".", "repository root")
	bin := flag.String("pigeonpost", "bin/pigeonpost", "the pigeonpost binary")
	netsmtp := flag.String("netsmtp", "", "the built e2e/clients net/smtp program")
	verifyGo := flag.String("verifygo", "", "the built docs/webhooks signature check")
	work := flag.String("work", "", "directory for sockets, logs and received mail (default: a new temporary directory)")
	only := flag.String("only", "", "run only the clients whose name contains this")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Stdout, options{root: *root, bin: *bin, netsmtp: *netsmtp, verifyGo: *verifyGo, work: *work, only: *only}))
}

type options struct {
	root, bin, netsmtp, verifyGo, work, only string
}

// report prints check lines and counts them.
type report struct {
	out            io.Writer
	passed, failed int
}

func (r *report) pass(name, detail string) {
	r.passed++
	if detail != "" {
		name += " — " + detail
	}
	fmt.Fprintf(r.out, "ok   %s\n", name)
}

func (r *report) fail(name string, err error) {
	r.failed++
	fmt.Fprintf(r.out, "FAIL %s: %s\n", name, indentMore(err.Error()))
}

// check records err == nil as a pass.
func (r *report) check(name string, detail string, err error) bool {
	if err != nil {
		r.fail(name, err)
		return false
	}
	r.pass(name, detail)
	return true
}

func indentMore(s string) string { return strings.ReplaceAll(s, "\n", "\n     ") }

func run(ctx context.Context, out io.Writer, opt options) (code int) {
	start := time.Now()
	rep := &report{out: out}
	root, err := filepath.Abs(opt.root)
	if err != nil {
		fmt.Fprintln(out, "e2e:", err)
		return 2
	}
	bin, _ := filepath.Abs(opt.bin)

	work := opt.work
	if work == "" {
		if work, err = os.MkdirTemp("", "pigeonpost-e2e."); err != nil {
			fmt.Fprintln(out, "e2e:", err)
			return 2
		}
	}
	var cleanup []func()
	defer func() {
		for i := len(cleanup) - 1; i >= 0; i-- {
			cleanup[i]()
		}
		fmt.Fprintf(out, "e2e: %s\n", time.Since(start).Round(100*time.Millisecond))
		if rep.failed > 0 || code != 0 {
			fmt.Fprintf(out, "e2e: logs, client transcripts and received mail kept in %s\n", work)
			code = 1
		} else if opt.work == "" {
			os.RemoveAll(work)
		}
		fmt.Fprintf(out, "%d passed, %d failed\n", rep.passed, rep.failed)
	}()
	setupFailed := func(name string, err error) int {
		rep.fail("setup: "+name, err)
		return 1
	}

	// Which clients can run here. A missing one is a failure, never a skip.
	all := clients(opt.netsmtp, opt.verifyGo)
	var runnable []client
	matched := 0
	for _, c := range all {
		if opt.only != "" && !strings.Contains(c.name, opt.only) {
			continue
		}
		matched++
		if why := c.missing(root); why != "" {
			rep.fail(c.name+": client not installed", fmt.Errorf("%s — run %s (or: %s)", why, installAll, c.install))
			continue
		}
		rep.pass(c.name+": installed", clientVersion(root, c))
		runnable = append(runnable, c)
	}
	if matched == 0 {
		return setupFailed("--only", fmt.Errorf("no client name contains %q", opt.only))
	}
	if m := needCommand("redis-server"); m != "" {
		return setupFailed("redis-server", fmt.Errorf("%s — run %s (or: apt-get install -y redis-server)", m, installAll))
	}
	if m := needFile(bin); m != "" {
		return setupFailed("pigeonpost", fmt.Errorf("%s — run make build", m))
	}

	// The stack.
	dns, err := startDNS()
	if err != nil {
		return setupFailed("dns", err)
	}
	cleanup = append(cleanup, dns.Close)
	dns.Update(func(z *dnsserver.Zone) {
		z.SetMX(rcptDomain, map[string]uint16{"mx." + rcptDomain: 10})
		z.SetA("mx."+rcptDomain, "127.0.0.1")
	})
	snk, err := startSink(filepath.Join(work, "sink"), false)
	if err != nil {
		return setupFailed("sink", err)
	}
	cleanup = append(cleanup, snk.Close)
	rehearsal, err := startSink(filepath.Join(work, "rehearsal"), true)
	if err != nil {
		return setupFailed("rehearsal server", err)
	}
	cleanup = append(cleanup, rehearsal.Close)
	redis, sock, err := startRedis(ctx, work)
	if err != nil {
		return setupFailed("redis-server", err)
	}
	cleanup = append(cleanup, func() { redis.stop(10 * time.Second) })
	gw, addrs, err := startGateway(ctx, bin, work, gatewayConfig(sock, dns.Addr(), snk.Port()))
	if err != nil {
		return setupFailed("pigeonpost", err)
	}
	cleanup = append(cleanup, func() { gw.stop(20 * time.Second) })
	rep.pass("setup: redis-server on a unix socket (appendonly, appendfsync always), loopback DNS, sink on 127.0.0.1:"+fmt.Sprint(snk.Port()), "")
	rep.pass("setup: pigeonpost serve", fmt.Sprintf("smtp %s, smtp tls %s, http %s", addrs.SMTP, addrs.SMTPTLS, addrs.HTTP))

	api := newAPI(addrs.HTTP, apiKey)
	if err := healthz(api); err != nil {
		return setupFailed("/healthz", err)
	}
	rep.pass("setup: /healthz ready (durable Redis)", "")
	if err := verifyDomain(rep, api, dns); err != nil {
		return setupFailed("domain "+senderDomain, err)
	}

	e := &env{rep: rep, api: api, sink: snk, rehearsal: rehearsal, dns: dns, addrs: addrs, root: root, logDir: filepath.Join(work, "clients")}
	if err := os.MkdirAll(e.logDir, 0o755); err != nil {
		return setupFailed("logs", err)
	}
	var verifiers []client
	for _, c := range runnable {
		if c.verify {
			verifiers = append(verifiers, c)
			continue
		}
		if c.sends {
			e.sendsAPI(ctx, c)
			continue
		}
		if c.browser {
			e.dashboard(ctx, c)
			continue
		}
		for _, mode := range c.modes {
			e.positive(ctx, c, mode)
		}
		e.negative(ctx, c)
		if c.sendAt {
			e.sendAt(ctx, c)
		}
	}
	e.readAll(ctx)
	if len(verifiers) > 0 && ctx.Err() == nil {
		e.webhooks(ctx, verifiers)
	}
	if ctx.Err() != nil {
		rep.fail("interrupted", errors.New("stopped by a signal before every client ran"))
		return 1
	}
	e.noStrays()
	if gw.exited() {
		rep.fail("pigeonpost", fmt.Errorf("exited during the run (%v):\n%s", gw.err, gw.logTail(20)))
		return 1
	}
	stopStart := time.Now()
	gw.stop(20 * time.Second)
	rep.check("pigeonpost stops cleanly on SIGTERM", fmt.Sprintf("exit 0 in %s", time.Since(stopStart).Round(time.Millisecond)), func() error {
		if gw.err != nil {
			return fmt.Errorf("%v:\n%s", gw.err, gw.logTail(10))
		}
		return nil
	}())
	return 0
}

func gatewayConfig(redisSock, dnsAddr string, sinkPort int) string {
	return fmt.Sprintf(`# Written by e2e/driver for one run.
smtp:
  listen: "127.0.0.1:0"
  tls_listen: "127.0.0.1:0"
  hostname: "gateway.test"
http:
  listen: "127.0.0.1:0"
  public_url: %q
redis:
  url: "unix://%s"
  require_durable: true
dns:
  resolver: %q
delivery:
  mx_port: %d
  allow_private_destinations: true
  workers: 2
  timeout: 15s
  retry_initial: 250ms
  retry_max: 2s
  claim_idle: 30s
webhooks:
  allow_private_urls: true # the driver's receiver is on 127.0.0.1, over http
  allow_http: true
  retry_initial: 250ms
  retry_max: 2s
auth:
  bootstrap_key: %q
  failure_delay: 1s
domains:
  spf_include: "_spf.gateway.test"
log:
  level: "debug"
  format: "text"
`, publicURL, redisSock, dnsAddr, sinkPort, apiKey)
}

func healthz(api *apiClient) error {
	var h struct {
		Ready    bool     `json:"ready"`
		Problems []string `json:"problems"`
	}
	_, err := api.call("GET", "/healthz", nil, &h)
	if err == nil && !h.Ready {
		err = fmt.Errorf("not ready: %v", h.Problems)
	}
	return err
}

// verifyDomain adds the sending domain through the API, checks that it does
// not verify before its records are published, publishes them in the DNS
// server and verifies it.
func verifyDomain(rep *report, api *apiClient, dns *dnsServer) error {
	type record struct{ Type, Name, Value, Status string }
	type domain struct {
		ID         string   `json:"id"`
		Name       string   `json:"name"`
		Status     string   `json:"status"`
		DNSRecords []record `json:"dnsRecords"`
	}
	var d domain
	if _, err := api.call("POST", "/v1/domains", map[string]string{"name": senderDomain}, &d); err != nil {
		return err
	}
	if d.ID == "" || len(d.DNSRecords) == 0 {
		return fmt.Errorf("POST /v1/domains returned no id or no DNS records: %+v", d)
	}
	var names []string
	for _, r := range d.DNSRecords {
		if r.Type != "TXT" {
			return fmt.Errorf("unexpected record type %q for %s", r.Type, r.Name)
		}
		names = append(names, r.Name)
	}
	rep.pass("setup: POST /v1/domains "+senderDomain, fmt.Sprintf("%d TXT records to publish: %s", len(names), strings.Join(names, ", ")))

	var before domain
	if _, err := api.call("POST", "/v1/domains/"+d.ID+"/verify", nil, &before); err != nil {
		return err
	}
	rep.check("setup: verify before publishing the records", "status "+before.Status, func() error {
		if before.Status == "verified" {
			return fmt.Errorf("verified with nothing published")
		}
		return nil
	}())

	for _, r := range d.DNSRecords {
		dns.addTXT(r.Name, r.Value)
	}
	var after domain
	if _, err := api.call("POST", "/v1/domains/"+d.ID+"/verify", nil, &after); err != nil {
		return err
	}
	if after.Status != "verified" {
		return fmt.Errorf("after publishing the records: status %q, records %+v", after.Status, after.DNSRecords)
	}
	rep.pass("setup: POST /v1/domains/"+d.ID+"/verify", "status verified")
	return nil
}

var emailIDPattern = regexp.MustCompile(`\bem_[a-z2-7]{26}(-q[1-9][0-9]{0,2})?\b`) // store.NewIDIn
