// Command smtpload is pigeonpost's SMTP load generator, and a counting SMTP
// sink (-sink) for the delivery side of `make bench`.
//
// Load mode drives a submission server with a bounded, reproducible workload
// and reports messages per second accepted, the latency from the final "." to
// the 250 reply, the connection setup time (connect + greeting + EHLO +
// STARTTLS + EHLO + AUTH), the reply codes to the final "." and the errors by
// stage. Its client, its message and its figures follow
// /work/shared/bench/loadgen, so the numbers of the two tools are comparable.
//
// Every run is bounded: by -n messages (each attempt, failed or not, uses
// one), by -duration (no new message is started after it) and by a hard
// deadline of -duration + -grace applied to every socket operation. Targets
// that are not loopback addresses are refused.
//
// With -pid name=PID (repeatable), -sink-stats FILE and -metrics URL it also
// reports the server side: CPU time per accepted message and peak RSS of each
// process, how many messages reached the downstream sink (waiting up to
// -drain-timeout for the rest) and the gateway's delivery queue depth.
//
// -addr takes several servers separated by commas (a fleet of gateways):
// each new connection goes to the next. With -ledger FILE every message
// carries a unique X-Smtpload-Id and the ids answered 250 are written to
// FILE; `-sink -ledger FILE` appends the id of each message it receives, and
// -ledger-check ACKED DELIVERED reports acked= delivered= lost= dup=.
//
//	smtpload -addr 127.0.0.1:2587 -starttls -user apikey -pass sp_live_… \
//	  -c 20 -n 2000 -per-conn 100 -size 10240 -links 20 \
//	  -header 'X-SP-Track-Opens: true' -header 'X-SP-Track-Clicks: true' -json out.json
//
//	smtpload -sink -addr 127.0.0.1:0 -addr-file sink.addr -stats-file sink.json
//	smtpload -report a.json b.json   # markdown table of JSON reports
package main

import (
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ", ") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

type config struct {
	Label       string   `json:"label"`
	Addr        string   `json:"addr"`
	StartTLS    bool     `json:"starttls"`
	ImplicitTLS bool     `json:"implicit_tls"`
	TLSResume   bool     `json:"tls_resume"`
	User        string   `json:"user,omitempty"`
	Conns       int      `json:"conns"`
	Total       int      `json:"messages_requested"`
	PerConn     int      `json:"per_conn"`
	BodySize    int      `json:"body_size"`
	Links       int      `json:"links"`
	HTML        bool     `json:"html"`
	Rcpts       int      `json:"rcpts_per_message"`
	Headers     []string `json:"extra_headers"`
	From        string   `json:"from"`
	To          string   `json:"to"`
	Helo        string   `json:"helo"`
	Duration    string   `json:"duration_limit"`
	CmdTimeout  string   `json:"cmd_timeout"`

	pass     string
	addrs    []string // Addr split at commas: connections go round-robin over them
	ledger   string   // -ledger: tag each message with an id, write the acknowledged ones here
	duration time.Duration
	grace    time.Duration
	timeout  time.Duration
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("smtpload", flag.ContinueOnError)
	c := &config{}
	fs.StringVar(&c.Label, "label", "", "free-form label copied into the report")
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:2587", "server host:port (loopback only), or several separated by commas: each new connection goes to the next (round-robin); with -sink, the address to listen on")
	fs.BoolVar(&c.StartTLS, "starttls", false, "issue STARTTLS after EHLO (port 587 style); with -sink, offer STARTTLS")
	fs.BoolVar(&c.ImplicitTLS, "tls", false, "implicit TLS on connect (port 465 style)")
	fs.BoolVar(&c.TLSResume, "tls-resume", false, "enable a client TLS session cache (resumption); off = full handshake per connection")
	fs.StringVar(&c.User, "user", "", "AUTH PLAIN user (empty: no AUTH); pigeonpost's is apikey; with -sink, require AUTH with this user")
	fs.StringVar(&c.pass, "pass", "", "AUTH PLAIN password (for pigeonpost: an API key)")
	fs.IntVar(&c.Conns, "c", 10, "concurrent connections")
	fs.IntVar(&c.Total, "n", 1000, "total messages to attempt")
	fs.IntVar(&c.PerConn, "per-conn", 100, "messages per connection (RSET between them); 1 = new connection per message")
	fs.IntVar(&c.BodySize, "size", 10240, "message body size in bytes (headers come on top)")
	fs.IntVar(&c.Links, "links", 20, "number of <a href> links in the HTML body")
	fs.BoolVar(&c.HTML, "html", true, "text/html body (false: text/plain, no links)")
	fs.IntVar(&c.Rcpts, "rcpts", 1, "recipients per message")
	fs.Var((*stringList)(&c.Headers), "header", "extra header line, e.g. 'X-SP-Track-Opens: true' (repeatable)")
	fs.StringVar(&c.From, "from", "sender@bench.example", "envelope sender and From: address")
	fs.StringVar(&c.To, "to", "rcpt@bench.example", "envelope recipient (with -rcpts > 1, +i is added to the local part)")
	fs.StringVar(&c.Helo, "helo", "loadgen.bench.example", "EHLO name")
	fs.DurationVar(&c.duration, "duration", 60*time.Second, "time limit: no message is started after it")
	fs.DurationVar(&c.grace, "grace", 15*time.Second, "after -duration, in-flight operations get this long before sockets time out")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "per-command timeout")
	jsonOut := fs.String("json", "", "write the JSON report to this file ('-' = stdout)")
	quiet := fs.Bool("q", false, "no human summary")
	var pids stringList
	fs.Var(&pids, "pid", "server process to observe, name=PID (repeatable): CPU per message and peak RSS")
	sinkStats := fs.String("sink-stats", "", "stats file of the downstream sink: count deliveries and wait for them")
	drainTimeout := fs.Duration("drain-timeout", 120*time.Second, "with -sink-stats, wait at most this long for every accepted message to be delivered")
	metricsURL := fs.String("metrics", "", "pigeonpost /metrics URL: report pigeonpost_delivery_queue_depth after the run")
	sinkMode := fs.Bool("sink", false, "run a counting SMTP sink on -addr instead of generating load")
	sinkAddrFile := fs.String("addr-file", "", "with -sink, write the bound address here once listening")
	sinkStatsFile := fs.String("stats-file", "", "with -sink, keep a JSON stats file here (rewritten every 100 ms)")
	sinkCert := fs.String("cert", "", "with -sink, PEM certificate (default: in-memory self-signed ECDSA)")
	sinkKey := fs.String("key", "", "with -sink, PEM private key")
	report := fs.Bool("report", false, "print a markdown table of the JSON reports named as arguments, then exit")
	fs.StringVar(&c.ledger, "ledger", "", "give each message a unique "+idHeader+" header and write the ids of those answered 250 here, one a line; "+
		"with -sink, append the "+idHeader+" of each message received here (see -ledger-check)")
	ledgerCheck := fs.Bool("ledger-check", false, "compare the ledgers ACKED (load) and DELIVERED (sink) named as arguments: print acked= delivered= lost= dup=, exit 1 if an acknowledged message is missing")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *report {
		if err := printReport(os.Stdout, fs.Args()); err != nil {
			fmt.Fprintln(os.Stderr, "smtpload -report:", err)
			return 1
		}
		return 0
	}
	if *ledgerCheck {
		if fs.NArg() != 2 {
			fmt.Fprintln(os.Stderr, "smtpload -ledger-check: want two files, ACKED and DELIVERED")
			return 2
		}
		lc, err := checkLedgers(fs.Arg(0), fs.Arg(1))
		if err != nil {
			fmt.Fprintln(os.Stderr, "smtpload -ledger-check:", err)
			return 2
		}
		fmt.Println(lc)
		if lc.Lost > 0 {
			return 1
		}
		return 0
	}
	c.addrs = strings.Split(c.Addr, ",")
	for _, a := range c.addrs {
		if err := checkLoopback(a); err != nil {
			fmt.Fprintln(os.Stderr, "smtpload:", err)
			return 2
		}
	}
	if *sinkMode {
		if len(c.addrs) > 1 {
			fmt.Fprintln(os.Stderr, "smtpload -sink: one -addr")
			return 2
		}
		err := runSink(sinkOptions{addr: c.Addr, addrFile: *sinkAddrFile, statsFile: *sinkStatsFile,
			starttls: c.StartTLS, user: c.User, pass: c.pass, cert: *sinkCert, key: *sinkKey, ledger: c.ledger})
		if err != nil {
			fmt.Fprintln(os.Stderr, "smtpload -sink:", err)
			return 1
		}
		return 0
	}

	c.Duration, c.CmdTimeout = c.duration.String(), c.timeout.String()
	if c.StartTLS && c.ImplicitTLS {
		fmt.Fprintln(os.Stderr, "smtpload: -starttls and -tls are exclusive")
		return 2
	}
	if c.Conns < 1 || c.Total < 1 || c.PerConn < 1 || c.Rcpts < 1 {
		fmt.Fprintln(os.Stderr, "smtpload: -c, -n, -per-conn and -rcpts must be >= 1")
		return 2
	}
	for _, h := range c.Headers {
		if !strings.Contains(h, ":") || strings.ContainsAny(h, "\r\n") {
			fmt.Fprintf(os.Stderr, "smtpload: bad -header %q\n", h)
			return 2
		}
	}
	if !c.HTML {
		c.Links = 0
	}
	procs, err := parsePIDs(pids)
	if err != nil {
		fmt.Fprintln(os.Stderr, "smtpload:", err)
		return 2
	}

	r := &runner{cfg: c, pid: os.Getpid()}
	if c.ledger != "" {
		r.runID = newRunID()
	}
	r.tlsConf = &tls.Config{InsecureSkipVerify: true, ServerName: "localhost", MinVersion: tls.VersionTLS12} //nolint:gosec // benchmark against self-signed loopback servers
	if c.TLSResume {
		r.tlsConf.ClientSessionCache = tls.NewLRUClientSessionCache(1024)
	}
	r.body = buildBody(c.BodySize, c.Links, c.HTML)
	for i := range c.Rcpts {
		if c.Rcpts == 1 {
			r.rcpts = append(r.rcpts, c.To)
		} else {
			l, d, _ := strings.Cut(c.To, "@")
			r.rcpts = append(r.rcpts, fmt.Sprintf("%s+%d@%s", l, i, d))
		}
	}

	var srv *serverReport
	if len(procs) > 0 || *sinkStats != "" || *metricsURL != "" {
		srv = &serverReport{Procs: procs}
		if *sinkStats != "" || *metricsURL != "" {
			srv.Delivery = &deliveryReport{SinkStats: *sinkStats}
		}
		if *sinkStats != "" {
			n, err := sinkCount(*sinkStats)
			if err != nil {
				fmt.Fprintln(os.Stderr, "smtpload: -sink-stats:", err)
				return 2
			}
			srv.Delivery.SinkBefore = n
		}
		for _, p := range procs {
			p.start()
		}
	}

	cpu0, cpuOK := readProcStat()
	ru0 := rusage()
	load0 := loadavg()
	start := time.Now()
	r.softStop = start.Add(c.duration)
	r.hardStop = r.softStop.Add(c.grace)

	var queuePeak <-chan int64
	stopWatch := make(chan struct{})
	if *metricsURL != "" {
		queuePeak = watchQueue(*metricsURL, stopWatch)
	}
	workers := make([]*worker, c.Conns)
	var wg sync.WaitGroup
	for i := range workers {
		workers[i] = newWorker()
		wg.Add(1)
		go func(w *worker) { defer wg.Done(); r.work(w) }(workers[i])
	}
	wg.Wait()
	wall := time.Since(start)
	close(stopWatch)
	ru1 := rusage()
	cpu1, _ := readProcStat()

	all := newWorker()
	for _, w := range workers {
		all.merge(w)
	}
	if c.ledger != "" {
		if err := writeLedger(c.ledger, r.runID, all.acked); err != nil {
			fmt.Fprintln(os.Stderr, "smtpload: -ledger:", err)
			return 1
		}
	}
	if srv != nil {
		for _, p := range procs {
			p.loadEnd()
		}
		if d := srv.Delivery; d != nil {
			if d.SinkStats != "" {
				n, _ := sinkCount(d.SinkStats)
				d.DeliveredAtLoadEnd = n - d.SinkBefore
				d.waitDrain(all.accepted, *drainTimeout)
			}
		}
		for _, p := range procs {
			p.drainEnd()
		}
		if d := srv.Delivery; d != nil {
			if *metricsURL != "" {
				d.QueueDepthMax = <-queuePeak
				time.Sleep(1100 * time.Millisecond) // the gauge is refreshed once a second
				if d.QueueDepth, err = queueDepth(*metricsURL); err != nil {
					d.MetricsErr = err.Error()
				}
			}
		}
		for _, p := range procs {
			p.finish(all.accepted, wall)
		}
	}

	errCount := 0
	for _, v := range all.stageErr {
		errCount += v
	}
	attempted := min(r.next.Load(), int64(c.Total))
	res := &result{
		Config:        c,
		MessageBytes:  len(header(c, 0, r.pid, r.runID, r.rcpts)) + len(r.body),
		Started:       start.UTC().Format(time.RFC3339),
		WallS:         round(wall.Seconds(), 3),
		Attempted:     attempted,
		Accepted:      all.accepted,
		Failed:        all.failed,
		MsgsPerS:      round(float64(all.accepted)/wall.Seconds(), 1),
		MBPerS:        round(float64(all.bytes)/1e6/wall.Seconds(), 2),
		DataLat:       stats(all.dataLat),
		TxnLat:        stats(all.txnLat),
		SetupLat:      stats(all.setupLat),
		ConnectLat:    stats(all.connLat),
		TLSLat:        stats(all.tlsLat),
		AuthLat:       stats(all.authLat),
		RsetLat:       stats(all.rsetLat),
		QuitLat:       stats(all.quitLat),
		Connections:   all.conns,
		SetupFailures: all.setupErr,
		ReplyCodes:    all.codes,
		Errors:        all.stageErr,
		ErrorCount:    errCount,
		ErrorSamples:  all.samples,
		TimedOut:      r.timedOut.Load(),
		Env: map[string]string{
			"tool": "smtpload", "go": runtime.Version(), "gomaxprocs": strconv.Itoa(runtime.GOMAXPROCS(0)),
			"loadavg_before": load0, "loadavg_after": loadavg(),
		},
		Server: srv,
	}
	lgCPU := (ru1 - ru0).Seconds()
	res.CPU = map[string]any{
		"loadgen_cpu_s":           round(lgCPU, 3),
		"loadgen_pct_of_one_core": round(100*lgCPU/wall.Seconds(), 1),
		"ncpu":                    runtime.NumCPU(),
	}
	if cpuOK && cpu1.total > cpu0.total {
		busy := float64(cpu1.busy-cpu0.busy) / float64(cpu1.total-cpu0.total)
		res.CPU["system_busy_pct_of_all_cores"] = round(100*busy, 1)
		res.CPU["system_busy_core_s"] = round(busy*float64(runtime.NumCPU())*wall.Seconds(), 2)
	}

	if !*quiet {
		fmt.Println(summary(res))
	}
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		b = append(b, '\n')
		if *jsonOut == "-" {
			os.Stdout.Write(b)
		} else if err := os.WriteFile(*jsonOut, b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "smtpload:", err)
			return 1
		}
	}
	if all.accepted == 0 {
		return 1
	}
	return 0
}

// checkLoopback refuses any target or listen address off loopback.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("refusing non-loopback address %q", addr)
	}
	return nil
}
