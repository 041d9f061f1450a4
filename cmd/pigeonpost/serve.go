package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/pigeonpost/pigeonpost/api"
	"github.com/pigeonpost/pigeonpost/config"
	"github.com/pigeonpost/pigeonpost/dashboard"
	"github.com/pigeonpost/pigeonpost/internal/certs"
	"github.com/pigeonpost/pigeonpost/internal/membudget"
	"github.com/pigeonpost/pigeonpost/internal/redisclient"
	"github.com/pigeonpost/pigeonpost/internal/safehttp"
	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/account"
	"github.com/pigeonpost/pigeonpost/pipeline/compose"
	"github.com/pigeonpost/pigeonpost/pipeline/contacts"
	"github.com/pigeonpost/pigeonpost/pipeline/deliver"
	"github.com/pigeonpost/pigeonpost/pipeline/engagement"
	"github.com/pigeonpost/pigeonpost/pipeline/feedback"
	"github.com/pigeonpost/pigeonpost/pipeline/reputation"
	"github.com/pigeonpost/pigeonpost/pipeline/sends"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
	"github.com/pigeonpost/pigeonpost/pipeline/webhooks"
	"github.com/pigeonpost/pigeonpost/smtpd"
	"github.com/pigeonpost/pigeonpost/tracking"
)

type serveOptions struct {
	dev       bool
	readyFile string
	stdout    io.Writer
	// onReady, for tests, receives the bound addresses once listening.
	onReady func(addrs boundAddrs)
	// redisHook, for tests, watches every Redis command (e.g. for cluster slots).
	redisHook redis.Hook
	// deliverOnly is pigeonpost deliver: the delivery workers, webhook
	// dispatch and the rest of the background work, with no SMTP listener
	// and, on http.listen, only GET /healthz and GET /metrics (and
	// http.admin_listen when set). Mail accepted by other processes on the
	// same Redis is delivered here.
	deliverOnly bool
}

// boundAddrs are the addresses the listeners got (useful with port 0).
type boundAddrs struct {
	SMTP    string `json:"smtp"`
	SMTPTLS string `json:"smtp_tls,omitempty"`
	Mailbox string `json:"mailbox,omitempty"`
	HTTP    string `json:"http"`
	Admin   string `json:"admin,omitempty"`
}

// shutdownGrace bounds how long sessions and deliveries may finish after SIGTERM.
const shutdownGrace = 30 * time.Second

func serve(ctx context.Context, cfg config.Config, log *slog.Logger, opt serveOptions) error {
	if opt.deliverOnly && cfg.Delivery.Workers == 0 {
		return errors.New("delivery.workers: is 0, and pigeonpost deliver only delivers")
	}
	log.Info("starting pigeonpost", "version", version, "config", fmt.Sprintf("%+v", cfg.Redacted()))
	p, err := build(ctx, cfg, log, opt)
	if err != nil {
		return err
	}
	defer p.close()
	if opt.deliverOnly {
		cfg.SMTP.Listen, cfg.SMTP.TLSListen, cfg.SMTP.MailboxListen = "", "", ""
		full := p.http.Handler
		probes := http.NewServeMux()
		probes.Handle("GET /healthz", full)
		probes.Handle("GET /metrics", full)
		p.http.Handler = probes
	}
	ln, err := listen(cfg)
	if err != nil {
		return err
	}
	return p.run(ctx, ln, opt)
}

// parts are the long-lived components of a serving process, each built
// once from the configuration by build and handed to what uses it.
type parts struct {
	cfg        config.Config
	log        *slog.Logger
	rdb        redis.UniversalClient
	closeRedis func()
	embedded   bool     // the in-memory Redis of redis.url ""
	durability []string // what makes acknowledged mail losable, as read at start

	store      *store.Store
	pipeline   *pipeline.Service
	account    *account.Service
	compose    *compose.Service
	contacts   *contacts.Service
	engagement *engagement.Service
	sends      *sends.Service
	reputation *reputation.Guard
	feedback   *feedback.Service

	smtp       *smtpd.Server
	mailbox    *smtpd.MailboxServer
	http       *http.Server
	admin      *http.Server
	worker     *deliver.Worker
	dispatcher *webhooks.Dispatcher
}

// build connects to Redis and builds every component; nothing listens yet.
func build(ctx context.Context, cfg config.Config, log *slog.Logger, opt serveOptions) (_ *parts, err error) {
	p := &parts{cfg: cfg, log: log}
	if p.rdb, p.embedded, p.closeRedis, err = openRedis(cfg.Redis, log); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			p.closeRedis()
		}
	}()
	if opt.redisHook != nil {
		p.rdb.AddHook(opt.redisHook)
	}
	if err := waitPing(ctx, p.rdb); err != nil {
		return nil, fmt.Errorf("redis.url: cannot reach Redis: %w", err)
	}
	p.durability = durabilityProblems(ctx, p.rdb, p.embedded, log)

	p.store = store.New(p.rdb, time.Now)
	p.store.SetRetention(store.Retention{Content: cfg.Retention.Content, Records: cfg.Retention.Records})
	p.store.SetMinReplicas(cfg.Redis.MinReplicasAcked, cfg.Redis.MinReplicasTimeout)
	p.store.SetShards(cfg.Redis.Shards)
	// tracking.secret is "current,older,...": links signed with an older
	// secret keep working after a rotation.
	secrets := cfg.Tracking.Secrets()
	if len(secrets) == 0 {
		secret, err := p.store.TrackingSecret(ctx)
		if err != nil {
			return nil, fmt.Errorf("tracking secret: %w", err)
		}
		secrets = [][]byte{secret}
	}
	signer := tracking.NewSigner(secrets[0], secrets[1:]...)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	resolver := &deliver.Resolver{Addr: cfg.DNS.Resolver, Timeout: 5 * time.Second}
	fetcher, err := attachmentFetcher(cfg.Attachments, resolver.NetResolver())
	if err != nil {
		return nil, err
	}
	const cacheTTL = 5 * time.Second
	p.pipeline = pipeline.New(p.store, signer, pipeline.Options{
		Hostname:                 cfg.SMTP.Hostname,
		PublicURL:                cfg.HTTP.PublicURL,
		RateLimit:                pipeline.RateLimit{PerSecond: cfg.Limits.RatePerSecond, Burst: cfg.Limits.Burst, Monthly: cfg.Limits.MonthlyEmails},
		CacheTTL:                 cacheTTL,
		InFlow:                   pipeline.InFlow{BacklogLimit: int64(cfg.Delivery.BacklogLimit), Delay: cfg.Delivery.InFlowDelay},
		AuthFailureDelay:         cfg.Auth.FailureDelay,
		LockOutPrivate:           cfg.Auth.LockOutPrivateAddresses,
		AllowPrivateDestinations: cfg.Delivery.AllowPrivateDestinations,
		Logger:                   log,
		Metrics:                  pipeline.NewMetrics(reg),
	})
	p.account = account.New(p.store, p.pipeline, account.Options{
		MonthlyEmails: cfg.Limits.MonthlyEmails,
		DKIMSelector:  cfg.Domains.DKIMSelector,
		SPFInclude:    cfg.Domains.SPFInclude,
		Resolver:      resolver,
		Lookup:        resolver,
		WebhookURLs:   webhooks.URLPolicy{AllowPrivate: cfg.Webhooks.AllowPrivateURLs, AllowHTTP: cfg.Webhooks.AllowHTTP},
	})
	p.compose = compose.New(p.store, p.pipeline, compose.Options{Fetcher: fetcher})
	p.contacts = contacts.New(p.store, contacts.Options{})
	p.engagement = engagement.New(p.store, p.pipeline, p.account, signer, engagement.Options{
		PublicURL:   cfg.HTTP.PublicURL,
		CNAMETarget: cfg.Tracking.CNAMETarget,
		Lookup:      resolver,
		BotWindow:   cfg.Tracking.BotWindow,
		CacheTTL:    cacheTTL,
		Logger:      log,
		Metrics:     engagement.NewMetrics(reg),

		MaxHitsPerIPPerMinute: cfg.Tracking.MaxHitsPerIPPerMinute,
		LimitPrivateHits:      cfg.Auth.LockOutPrivateAddresses, // no proxy in front: its address is no one else's
	})
	so := sends.Options{PublicURL: cfg.HTTP.PublicURL, Logger: log}
	if cfg.SMTP.MailboxListen != "" {
		so.UnsubscribeMailbox = "unsubscribe@" + cfg.SMTP.Hostname
	}
	p.sends = sends.New(p.store, p.pipeline, p.compose, p.contacts, signer, so)
	p.reputation = reputation.New(p.store, reputationOptions(cfg, log))
	p.feedback = feedback.New(p.store, signer, p.reputation, feedback.Options{Logger: log})

	if cfg.Auth.BootstrapKey != "" {
		if _, err := p.account.EnsureKey(ctx, "default", cfg.Auth.BootstrapKey); err != nil {
			return nil, fmt.Errorf("auth.bootstrap_key: %w", err)
		}
		log.Info("bootstrap key ready", "account", "default")
	}

	tlsConfig, err := loadTLS(cfg, log)
	if err != nil {
		return nil, err
	}

	// One bound on the memory of message contents in flight, shared by
	// the SMTP sessions reading large messages, the REST requests with
	// large bodies and the delivery workers reading bodies back
	// (smtp.data_memory_bytes), of which one account holds at most
	// smtp.data_memory_per_account.
	budget := membudget.New(cfg.SMTP.DataMemoryBytes, pipeline.MessageCost(cfg.SMTP.MaxMessageBytes), cfg.SMTP.DataMemoryPerAccount)
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pigeonpost_message_memory_bytes",
			Help: "Bytes of smtp.data_memory_bytes reserved by messages being received or delivered.",
		}, func() float64 { return float64(budget.InUse()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pigeonpost_message_memory_waiting",
			Help: "Messages waiting for their share of smtp.data_memory_bytes.",
		}, func() float64 { return float64(budget.Waiting()) }),
	)
	p.smtp = smtpd.New(p.pipeline, smtpd.Options{
		Hostname:            cfg.SMTP.Hostname,
		MaxMessageBytes:     cfg.SMTP.MaxMessageBytes,
		MaxRecipients:       cfg.SMTP.MaxRecipients,
		MaxLineBytes:        cfg.SMTP.MaxLineBytes,
		MaxConnections:      cfg.SMTP.MaxConnections,
		MaxConnectionsPerIP: cfg.SMTP.MaxConnectionsPerIP,
		ReadTimeout:         cfg.SMTP.ReadTimeout,
		WriteTimeout:        cfg.SMTP.WriteTimeout,
		DataTimeout:         cfg.SMTP.DataTimeout,
		MaxSessionTime:      cfg.SMTP.MaxSessionTime,
		ProxyTrusted:        proxyTrusted(cfg.SMTP),
		TLSConfig:           tlsConfig,
		Logger:              log,
		Metrics:             smtpd.NewMetrics(reg),
		Budget:              budget,
	})
	p.mailbox = smtpd.NewMailboxServer(p.sends, p.feedback, smtpd.MailboxOptions{
		Hostname: cfg.SMTP.Hostname, ReportsMailbox: cfg.SMTP.ReportsMailbox, TLSConfig: tlsConfig, Logger: log,
	})
	replays := &webhooks.Replayer{Store: p.store, MaxAge: cfg.Webhooks.MaxAge, Retention: cfg.Retention.Records, Logger: log}
	apiParts := api.Parts{Pipeline: p.pipeline, Account: p.account, Compose: p.compose, Engagement: p.engagement,
		Contacts: p.contacts, Sends: p.sends, Reputation: p.reputation, Feedback: p.feedback, Webhooks: replays,
		Destinations: p.store}
	// The dashboard serves / and /dashboard/, and its session is one more
	// way to authenticate a /v1 request (api.Options.Session).
	dash := dashboard.New(p.pipeline, p.store, dashboard.Options{
		Secure: strings.HasPrefix(cfg.HTTP.PublicURL, "https://"), Logger: log})
	p.http = &http.Server{
		Handler: dash.Handler(api.Handler(apiParts, api.Options{
			MaxBodyBytes: cfg.HTTP.MaxBodyBytes,
			Budget:       budget,
			Metrics:      promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
			Ready:        p.ready,
			Session:      dash.Authenticate,
			Logger:       log,
		})),
		ReadHeaderTimeout: cfg.HTTP.ReadHeaderTimeout,
		ReadTimeout:       cfg.HTTP.ReadTimeout,
		IdleTimeout:       2 * time.Minute,
		// Anyone may call the tracking endpoints: 64 KiB of header is
		// plenty for a key and a browser, where net/http's 1 MiB would let
		// each request hold a megabyte of User-Agent.
		MaxHeaderBytes: 64 << 10,
	}
	p.admin = &http.Server{Handler: adminHandler(api.AdminHandler(apiParts, api.Options{Logger: log})),
		ReadHeaderTimeout: 10 * time.Second}

	p.worker = &deliver.Worker{
		Store: p.store,
		Transport: &deliver.Transport{
			Hostname: cfg.SMTP.Hostname, Port: cfg.Delivery.MXPort, RelayHost: cfg.Delivery.RelayHost,
			Resolver: resolver, Timeout: cfg.Delivery.Timeout, RequireTLS: cfg.Delivery.RequireTLS,
			AllowPrivate: cfg.Delivery.AllowPrivateDestinations,
		},
		Concurrency:  cfg.Delivery.Workers,
		RetryInitial: cfg.Delivery.RetryInitial,
		RetryMax:     cfg.Delivery.RetryMax,
		MaxAge:       cfg.Delivery.MaxAge,
		ClaimIdle:    cfg.Delivery.ClaimIdle,
		Logger:       log,
		Metrics:      deliver.NewMetrics(reg),
		Budget:       budget,
		Reputation:   p.reputation,
		Signer:       signer,
		Shaping:      shaping(cfg.Delivery, p.store, log),
		Renderer:     p.pipeline, // each recipient's tracking, rendered at each attempt
		Domains:      p.pipeline, // the DKIM keys, cached as the sender checks are
	}

	// The shards this process writes to are read by every consumer.
	if err := p.store.RegisterShards(ctx); err != nil {
		return nil, fmt.Errorf("registering the mail shards: %w", err)
	}
	// The webhook dispatchers' consumer group starts at the end of each event
	// stream: create them before serving, so that no event of this run is missed.
	for k := range p.store.WriteShards() {
		if err := p.store.EnsureWebhookGroup(ctx, k); err != nil {
			return nil, fmt.Errorf("webhook event group: %w", err)
		}
	}
	p.dispatcher = &webhooks.Dispatcher{
		Store: p.store,
		Client: safehttp.New(safehttp.Options{
			Timeout: cfg.Webhooks.Timeout, AllowPrivate: cfg.Webhooks.AllowPrivateURLs, HTTPSOnly: !cfg.Webhooks.AllowHTTP,
			Resolver: resolver.NetResolver(),
		}),
		Workers:      cfg.Webhooks.Workers,
		Timeout:      cfg.Webhooks.Timeout,
		RetryInitial: cfg.Webhooks.RetryInitial,
		RetryMax:     cfg.Webhooks.RetryMax,
		MaxAge:       cfg.Webhooks.MaxAge,
		ClaimIdle:    cfg.Webhooks.ClaimIdle,
		UserAgent:    "pigeonpost-webhooks/" + version,
		// Answers are shown to the endpoint's owner only when no
		// endpoint can be inside the network.
		KeepAnswers: !cfg.Webhooks.AllowPrivateURLs,
		Logger:      log,
		Metrics:     webhooks.NewMetrics(reg),
	}
	return p, nil
}

// shaping is traffic shaping per destination (delivery.*_per_destination,
// suspend_*, destination_groups), shared through Redis.
func shaping(d config.Delivery, st *store.Store, log *slog.Logger) *deliver.Shaping {
	s := &deliver.Shaping{Store: st, MaxConnections: d.MaxConnectionsPerDestination,
		MessagesPerMinute: d.MessagesPerMinutePerDestination, SuspendMin: d.SuspendMin, SuspendMax: d.SuspendMax, Logger: log}
	groups, _ := config.ParseDestinationGroups(d.DestinationGroups) // validated at load
	if groups != nil {
		s.Groups = []deliver.Group{}
		for _, g := range groups {
			s.Groups = append(s.Groups, deliver.Group{Name: g.Name, Suffixes: g.Suffixes})
		}
	}
	return s
}

// reputationOptions are the reputation guard's limits (reputation.*).
func reputationOptions(cfg config.Config, log *slog.Logger) reputation.Options {
	r := cfg.Reputation
	return reputation.Options{AutoPause: r.AutoPause, Window: r.Window, MinVolume: r.MinVolume,
		MaxBounceRate: r.MaxBounceRate, MaxComplaintRate: r.MaxComplaintRate, Logger: log}
}

func (p *parts) close() { p.closeRedis() }

// ready reports the problems that make /healthz answer not ready.
func (p *parts) ready(ctx context.Context) []string {
	if !p.cfg.Redis.RequireDurable {
		return nil
	}
	if p.embedded {
		return p.durability
	}
	// Read again: an operator may fix (or break) Redis at runtime.
	problems, err := pipeline.DurabilityProblems(ctx, p.rdb)
	if err != nil {
		p.log.Warn("could not read Redis persistence settings; durability unknown", "err", err)
		return []string{errDurabilityUnknown}
	}
	return problems
}

// errDurabilityUnknown is what /healthz, which anyone may read, says when
// Redis's settings cannot be read: the error itself (Redis's address, its
// reply) goes to the log only.
const errDurabilityUnknown = "durability unknown: Redis's persistence settings could not be read (see the log)"

// listeners are the sockets a serving process accepts on.
type listeners struct {
	smtp    net.Listener // nil under pigeonpost deliver
	http    net.Listener
	smtpTLS net.Listener // nil without smtp.tls_listen
	mailbox net.Listener // nil without smtp.mailbox_listen
}

// listen opens every listener first, so that a busy port fails the start
// cleanly, before anything runs.
func listen(cfg config.Config) (_ *listeners, err error) {
	var ln listeners
	var opened []net.Listener
	defer func() {
		if err != nil {
			for _, l := range opened {
				l.Close()
			}
		}
	}()
	for _, l := range []struct {
		key, addr string
		dst       *net.Listener
	}{
		{"smtp.listen", cfg.SMTP.Listen, &ln.smtp},
		{"smtp.tls_listen", cfg.SMTP.TLSListen, &ln.smtpTLS},
		{"smtp.mailbox_listen", cfg.SMTP.MailboxListen, &ln.mailbox},
		{"http.listen", cfg.HTTP.Listen, &ln.http},
	} {
		if l.addr == "" {
			continue // optional, off (the required ones are validated)
		}
		if *l.dst, err = net.Listen("tcp", l.addr); err != nil {
			return nil, fmt.Errorf("%s: %w", l.key, err)
		}
		opened = append(opened, *l.dst)
	}
	return &ln, nil
}

// run serves on ln and runs the background work until ctx is done or a
// server fails, then drains within shutdownGrace.
func (p *parts) run(ctx context.Context, ln *listeners, opt serveOptions) error {
	cfg, log := p.cfg, p.log
	workerCtx, stopWorkers := context.WithCancel(context.Background())
	defer stopWorkers()
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	start := func(name string, fn func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	if ln.smtp != nil {
		start("smtp", func() error { return p.smtp.Serve(ln.smtp) })
	}
	if ln.smtpTLS != nil {
		start("smtp tls", func() error { return p.smtp.ServeTLS(ln.smtpTLS) })
	}
	if ln.mailbox != nil {
		start("mailbox", func() error { return p.mailbox.Serve(ln.mailbox) })
	}
	start("http", func() error { return p.http.Serve(ln.http) })
	adminAddr := ""
	if cfg.HTTP.AdminListen != "" {
		// Profiling on its own listener, off by default: never on the public port.
		adminLn, err := net.Listen("tcp", cfg.HTTP.AdminListen)
		if err != nil {
			errc <- fmt.Errorf("http.admin_listen: %w", err)
		} else {
			adminAddr = adminLn.Addr().String()
			start("admin", func() error { return p.admin.Serve(adminLn) })
		}
	}
	// Stopped with the workers, after the HTTP listener: it records what
	// the last requests queued before it returns.
	start("tracking hits", func() error { return p.engagement.RecordHits(workerCtx) })
	start("cache invalidations", func() error { return p.pipeline.RunInvalidations(workerCtx) })
	start("segment sends", func() error { return p.sends.Run(workerCtx) })
	if cfg.Delivery.Workers > 0 {
		start("delivery", func() error { return p.worker.Run(workerCtx) })
	} else {
		log.Warn("delivery.workers is 0: this process queues mail but delivers none")
	}
	if cfg.Webhooks.Workers > 0 {
		start("webhooks", func() error { return p.dispatcher.Run(workerCtx) })
	} else {
		log.Warn("webhooks.workers is 0: this process records events but sends no webhooks")
	}

	addrs := boundAddrs{HTTP: ln.http.Addr().String(), Admin: adminAddr}
	if ln.smtp != nil {
		addrs.SMTP = ln.smtp.Addr().String()
	}
	if ln.smtpTLS != nil {
		addrs.SMTPTLS = ln.smtpTLS.Addr().String()
	}
	if ln.mailbox != nil {
		addrs.Mailbox = ln.mailbox.Addr().String()
	}
	log.Info("listening", "smtp", addrs.SMTP, "smtp_tls", addrs.SMTPTLS, "mailbox", addrs.Mailbox, "http", addrs.HTTP, "admin", addrs.Admin)
	if opt.readyFile != "" {
		b, _ := json.Marshal(addrs)
		if err := os.WriteFile(opt.readyFile, b, 0o644); err != nil {
			log.Error("writing ready file", "err", err)
		}
	}
	if opt.dev {
		if err := printDevKey(ctx, p.account, addrs, cfg, opt.stdout); err != nil {
			log.Error("creating the dev key failed", "err", err)
		}
	}
	if opt.onReady != nil {
		opt.onReady(addrs)
	}

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case runErr = <-errc:
		log.Error("server failed, shutting down", "err", runErr)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	_ = p.http.Shutdown(shutdownCtx)
	_ = p.admin.Shutdown(shutdownCtx)
	_ = p.smtp.Shutdown(shutdownCtx)
	_ = p.mailbox.Shutdown(shutdownCtx)
	stopWorkers()
	wg.Wait()
	return runErr
}

// openRedis connects to redis.url or redis.addrs (one server, a cluster or
// Sentinel: redisclient.Open), or starts the embedded in-memory server when
// neither is set. All are used through the same go-redis interface.
func openRedis(cfg config.Redis, log *slog.Logger) (redis.UniversalClient, bool, func(), error) {
	if cfg.URL == "" && len(cfg.Addrs) == 0 {
		mr := miniredis.NewMiniRedis()
		if err := mr.StartAddr("127.0.0.1:0"); err != nil {
			return nil, false, nil, fmt.Errorf("embedded redis: %w", err)
		}
		log.Warn("redis.url is empty: using the EMBEDDED in-memory Redis. Every queued message and record is LOST when this process stops. Set redis.url for anything but development.")
		rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
		return rdb, true, func() { rdb.Close(); mr.Close() }, nil
	}
	rdb, err := redisclient.Open(cfg)
	if err != nil {
		return nil, false, nil, err
	}
	return rdb, false, func() { rdb.Close() }, nil
}

// waitPing waits up to 10 s for Redis to answer.
func waitPing(ctx context.Context, rdb redis.UniversalClient) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		err := rdb.Ping(ctx).Err()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// durabilityProblems logs, loudly, every setting under which an acknowledged
// message could be lost, and returns them for /healthz.
func durabilityProblems(ctx context.Context, rdb redis.UniversalClient, embedded bool, log *slog.Logger) []string {
	if embedded {
		return []string{"embedded in-memory Redis: acknowledged mail is lost when the process stops"}
	}
	problems, err := pipeline.DurabilityProblems(ctx, rdb)
	if err != nil {
		log.Warn("could not read Redis persistence settings (CONFIG GET refused?); durability unknown", "err", err)
		return []string{errDurabilityUnknown}
	}
	for _, p := range problems {
		log.Warn("REDIS IS NOT DURABLE: "+p, "redis", "durability")
	}
	return problems
}

func loadTLS(cfg config.Config, log *slog.Logger) (*tls.Config, error) {
	var cert tls.Certificate
	var err error
	if cfg.TLS.CertFile != "" {
		cert, err = tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls.cert_file: %w", err)
		}
	} else {
		cert, err = certs.SelfSigned(365*24*time.Hour, cfg.SMTP.Hostname)
		if err != nil {
			return nil, err
		}
		log.Warn("tls.cert_file is empty: using a self-signed certificate generated at start; clients that verify certificates will refuse it", "hostname", cfg.SMTP.Hostname)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// printDevKey creates a test-mode key and prints how to use it.
func printDevKey(ctx context.Context, svc *account.Service, addrs boundAddrs, cfg config.Config, w io.Writer) error {
	k, secret, err := svc.CreateAccount(ctx, "dev-"+store.NewID("run")[4:12], store.ModeTest)
	if err != nil {
		return err
	}
	_ = k
	smtpAddr := strings.Replace(addrs.SMTP, "[::]", "127.0.0.1", 1)
	fmt.Fprintf(w, `
pigeonpost dev server is up (embedded Redis: data lives in memory only).

Test-mode API key (nothing it sends is delivered; the MIME is kept):
  %[1]s

Send a message over SMTP with swaks:
  swaks --server %[2]s --tls --auth-user apikey --auth-password %[1]s \
    --from hello@example.com --to test@example.com \
    --header "Subject: Test SMTP" --body "Hello from SMTP"

Then look it up (the id is in swaks's "250 2.0.0 Ok: queued as em_…" line):
  curl -s %[3]s/v1/emails/em_… -H "Authorization: Bearer %[1]s"

Or send with the REST API:
  curl -s %[3]s/v1/emails -H "Authorization: Bearer %[1]s" -H "Content-Type: application/json" \
    -d '{"from":"hello@example.com","to":"test@example.com","subject":"Hi","html":"<p>Hello</p>"}'

`, secret, smtpAddr, cfg.HTTP.PublicURL)
	return nil
}

// adminHandler serves the operator's API (api.AdminHandler) under
// /admin/ and net/http/pprof under /debug/pprof/.
func adminHandler(operator http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/admin/", operator)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// proxyTrusted is smtp.proxy_trusted when smtp.proxy_protocol is on (Load
// has checked every entry), else nil: no PROXY protocol.
func proxyTrusted(c config.SMTP) []netip.Prefix {
	if !c.ProxyProtocol {
		return nil
	}
	var trusted []netip.Prefix
	for _, s := range c.ProxyTrusted {
		if p, err := config.ParsePrefix(s); err == nil {
			trusted = append(trusted, p)
		}
	}
	return trusted
}
