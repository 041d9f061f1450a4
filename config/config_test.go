package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// env returns a getenv over a fixed map, so tests never see the real
// environment.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

var noEnv = env(nil)

func mustLoad(t *testing.T, path string, getenv func(string) string) Config {
	t.Helper()
	c, err := Load(path, getenv)
	if err != nil {
		t.Fatalf("Load(%q): %v", path, err)
	}
	return c
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultsValid(t *testing.T) {
	d := Default()
	if err := d.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	if d.SMTP.Hostname == "" {
		t.Error("default smtp.hostname is empty")
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"smtp.listen", d.SMTP.Listen, ":587"},
		{"smtp.tls_listen", d.SMTP.TLSListen, ":465"},
		{"smtp.max_message_bytes", d.SMTP.MaxMessageBytes, int64(26214400)},
		{"smtp.max_recipients", d.SMTP.MaxRecipients, 100},
		{"smtp.max_connections", d.SMTP.MaxConnections, 1000},
		{"smtp.max_connections_per_ip", d.SMTP.MaxConnectionsPerIP, 100},
		{"smtp.read_timeout", d.SMTP.ReadTimeout, 60 * time.Second},
		{"smtp.write_timeout", d.SMTP.WriteTimeout, 60 * time.Second},
		{"smtp.data_timeout", d.SMTP.DataTimeout, 10 * time.Minute},
		{"smtp.data_memory_bytes", d.SMTP.DataMemoryBytes, int64(256 << 20)},
		{"tls.cert_file", d.TLS.CertFile, ""},
		{"tls.key_file", d.TLS.KeyFile, ""},
		{"http.listen", d.HTTP.Listen, ":8080"},
		{"http.public_url", d.HTTP.PublicURL, "http://localhost:8080"},
		{"http.max_body_bytes", d.HTTP.MaxBodyBytes, int64(35 << 20)},
		{"http.admin_listen", d.HTTP.AdminListen, ""},
		{"redis.url", d.Redis.URL, ""},
		{"redis.cluster", d.Redis.Cluster, false},
		{"redis.sentinel_master", d.Redis.SentinelMaster, ""},
		{"redis.password", d.Redis.Password, ""},
		{"redis.require_durable", d.Redis.RequireDurable, false},
		{"redis.min_replicas_acked", d.Redis.MinReplicasAcked, 0},
		{"redis.min_replicas_timeout", d.Redis.MinReplicasTimeout, time.Second},
		{"redis.shards", d.Redis.Shards, 1},
		{"dns.resolver", d.DNS.Resolver, ""},
		{"delivery.relay_host", d.Delivery.RelayHost, ""},
		{"delivery.mx_port", d.Delivery.MXPort, 25},
		{"delivery.workers", d.Delivery.Workers, 8},
		{"delivery.timeout", d.Delivery.Timeout, 2 * time.Minute},
		{"delivery.retry_initial", d.Delivery.RetryInitial, time.Minute},
		{"delivery.retry_max", d.Delivery.RetryMax, time.Hour},
		{"delivery.max_age", d.Delivery.MaxAge, 72 * time.Hour},
		{"delivery.claim_idle", d.Delivery.ClaimIdle, 5 * time.Minute},
		{"delivery.require_tls", d.Delivery.RequireTLS, false},
		{"delivery.backlog_limit", d.Delivery.BacklogLimit, 50000},
		{"delivery.in_flow_delay", d.Delivery.InFlowDelay, time.Second},
		{"delivery.max_connections_per_destination", d.Delivery.MaxConnectionsPerDestination, 10},
		{"delivery.messages_per_minute_per_destination", d.Delivery.MessagesPerMinutePerDestination, 0},
		{"delivery.suspend_min", d.Delivery.SuspendMin, time.Minute},
		{"delivery.suspend_max", d.Delivery.SuspendMax, 30 * time.Minute},
		{"delivery.destination_groups", d.Delivery.DestinationGroups, ""},
		{"auth.bootstrap_key", d.Auth.BootstrapKey, ""},
		{"auth.failure_delay", d.Auth.FailureDelay, time.Second},
		{"limits.rate_per_second", d.Limits.RatePerSecond, 100.0},
		{"limits.burst", d.Limits.Burst, 200},
		{"reputation.auto_pause", d.Reputation.AutoPause, true},
		{"reputation.window", d.Reputation.Window, 24 * time.Hour},
		{"reputation.min_volume", d.Reputation.MinVolume, int64(500)},
		{"reputation.max_bounce_rate", d.Reputation.MaxBounceRate, 0.05},
		{"reputation.max_complaint_rate", d.Reputation.MaxComplaintRate, 0.003},
		{"tracking.secret", d.Tracking.Secret, ""},
		{"tracking.bot_window", d.Tracking.BotWindow, 3 * time.Second},
		{"tracking.cname_target", d.Tracking.CNAMETarget, ""},
		{"tracking.max_hits_per_ip_per_minute", d.Tracking.MaxHitsPerIPPerMinute, 600},
		{"webhooks.workers", d.Webhooks.Workers, 4},
		{"webhooks.timeout", d.Webhooks.Timeout, 10 * time.Second},
		{"webhooks.retry_initial", d.Webhooks.RetryInitial, 30 * time.Second},
		{"webhooks.retry_max", d.Webhooks.RetryMax, time.Hour},
		{"webhooks.max_age", d.Webhooks.MaxAge, 72 * time.Hour},
		{"webhooks.claim_idle", d.Webhooks.ClaimIdle, time.Minute},
		{"webhooks.allow_private_urls", d.Webhooks.AllowPrivateURLs, false},
		{"webhooks.allow_http", d.Webhooks.AllowHTTP, false},
		{"domains.dkim_selector", d.Domains.DKIMSelector, "pigeonpost"},
		{"domains.spf_include", d.Domains.SPFInclude, ""},
		{"log.level", d.Log.Level, "info"},
		{"log.format", d.Log.Format, "text"},
		{"attachments.allow_private", d.Attachments.AllowPrivate, false},
		{"attachments.ca_file", d.Attachments.CAFile, ""},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("default %s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
}

func TestLoadNoFileNoEnv(t *testing.T) {
	c := mustLoad(t, "", noEnv)
	d := Default()
	if c.SMTP.Hostname != d.SMTP.Hostname {
		t.Errorf("hostname = %q, want %q", c.SMTP.Hostname, d.SMTP.Hostname)
	}
	if want := "_spf." + c.SMTP.Hostname; c.Domains.SPFInclude != want {
		t.Errorf("derived spf_include = %q, want %q", c.Domains.SPFInclude, want)
	}
	if want := "reports@" + c.SMTP.Hostname; c.SMTP.ReportsMailbox != want {
		t.Errorf("derived reports_mailbox = %q, want %q", c.SMTP.ReportsMailbox, want)
	}
	d.Domains.SPFInclude, d.SMTP.ReportsMailbox = c.Domains.SPFInclude, c.SMTP.ReportsMailbox
	if !reflect.DeepEqual(c, d) {
		t.Errorf("Load with nothing differs from Default beyond derived keys:\n got %+v\nwant %+v", c, d)
	}
}

func TestLoadEmptyFile(t *testing.T) {
	for _, content := range []string{"", "# only a comment\n", "---\n", "smtp:\n"} {
		p := writeFile(t, "empty.yaml", content)
		c := mustLoad(t, p, noEnv)
		if c.SMTP.Listen != ":587" {
			t.Errorf("%q: smtp.listen = %q, want default", content, c.SMTP.Listen)
		}
	}
}

func TestYAMLOverrides(t *testing.T) {
	p := writeFile(t, "c.yaml", `
smtp:
  listen: "0.0.0.0:2525"
  tls_listen: ""
  hostname: mx.example.org
  max_message_bytes: 1048576
  read_timeout: 1m30s
http:
  public_url: "https://mail.example.org/base/"
redis:
  url: "rediss://default:pw@redis.example.org:6380/2"
  require_durable: true
delivery:
  workers: 0
  retry_initial: 30s
  require_tls: yes
limits:
  rate_per_second: 2.5
  burst: 5
domains:
  spf_include: _spf.example.org
log:
  format: json
`)
	c := mustLoad(t, p, noEnv)
	d := Default()
	if c.SMTP.Listen != "0.0.0.0:2525" || c.SMTP.TLSListen != "" || c.SMTP.Hostname != "mx.example.org" {
		t.Errorf("smtp strings not applied: %+v", c.SMTP)
	}
	if c.SMTP.MaxMessageBytes != 1048576 || c.SMTP.ReadTimeout != 90*time.Second {
		t.Errorf("smtp numbers not applied: %+v", c.SMTP)
	}
	if c.SMTP.WriteTimeout != d.SMTP.WriteTimeout || c.SMTP.MaxRecipients != d.SMTP.MaxRecipients {
		t.Errorf("keys absent from the file lost their defaults: %+v", c.SMTP)
	}
	if c.HTTP.PublicURL != "https://mail.example.org/base" {
		t.Errorf("public_url = %q, want trailing slash trimmed", c.HTTP.PublicURL)
	}
	if c.Redis.URL != "rediss://default:pw@redis.example.org:6380/2" || !c.Redis.RequireDurable {
		t.Errorf("redis = %+v", c.Redis)
	}
	if c.Delivery.Workers != 0 || c.Delivery.RetryInitial != 30*time.Second || !c.Delivery.RequireTLS {
		t.Errorf("delivery = %+v", c.Delivery)
	}
	if c.Limits.RatePerSecond != 2.5 || c.Limits.Burst != 5 {
		t.Errorf("limits = %+v", c.Limits)
	}
	if c.Domains.SPFInclude != "_spf.example.org" {
		t.Errorf("explicit spf_include overridden: %q", c.Domains.SPFInclude)
	}
	if c.Log.Format != "json" || c.Log.Level != "info" {
		t.Errorf("log = %+v", c.Log)
	}
}

func TestDerivedSPFFollowsHostname(t *testing.T) {
	p := writeFile(t, "c.yaml", "smtp:\n  hostname: mx.example.net\n")
	c := mustLoad(t, p, noEnv)
	if c.Domains.SPFInclude != "_spf.mx.example.net" {
		t.Errorf("spf_include = %q, want _spf.mx.example.net", c.Domains.SPFInclude)
	}
	c = mustLoad(t, p, env(map[string]string{"PIGEONPOST_SMTP_HOSTNAME": "env.example.net"}))
	if c.SMTP.Hostname != "env.example.net" || c.Domains.SPFInclude != "_spf.env.example.net" {
		t.Errorf("hostname/spf = %q/%q, want env.example.net/_spf.env.example.net", c.SMTP.Hostname, c.Domains.SPFInclude)
	}
}

func TestEnvOverrides(t *testing.T) {
	p := writeFile(t, "c.yaml", "redis:\n  url: redis://from-file:6379\nlimits:\n  burst: 7\n")
	c := mustLoad(t, p, env(map[string]string{
		"PIGEONPOST_REDIS_URL":                                    "redis://from-env:6379/1", // string, beats the file
		"PIGEONPOST_SMTP_MAX_RECIPIENTS":                          "42",                      // int
		"PIGEONPOST_SMTP_MAX_MESSAGE_BYTES":                       "10485760",                // int64
		"PIGEONPOST_LIMITS_RATE_PER_SECOND":                       "12.5",                    // float64
		"PIGEONPOST_REDIS_REQUIRE_DURABLE":                        "true",                    // bool
		"PIGEONPOST_DELIVERY_REQUIRE_TLS":                         "1",                       // bool
		"PIGEONPOST_DELIVERY_RETRY_INITIAL":                       "45s",                     // duration
		"PIGEONPOST_SMTP_DATA_TIMEOUT":                            " 15m ",                   // duration, spaces trimmed
		"PIGEONPOST_SMTP_DATA_MEMORY_BYTES":                       "536870912",
		"PIGEONPOST_AUTH_BOOTSTRAP_KEY":                           "sp_test_0123456789abcdefghij",
		"PIGEONPOST_DELIVERY_WORKERS":                             "0",
		"PIGEONPOST_UNRELATED_THING":                              "ignored",
		"PIGEONPOST_HTTP_PUBLIC_URL":                              "https://example.com/",
		"PIGEONPOST_TRACKING_SECRET":                              "s3cret",
		"PIGEONPOST_TRACKING_BOT_WINDOW":                          "0s",
		"PIGEONPOST_TRACKING_CNAME_TARGET":                        "t.example.com",
		"PIGEONPOST_TRACKING_MAX_HITS_PER_IP_PER_MINUTE":          "30",
		"PIGEONPOST_WEBHOOKS_WORKERS":                             "2",
		"PIGEONPOST_WEBHOOKS_RETRY_INITIAL":                       "1s",
		"PIGEONPOST_WEBHOOKS_ALLOW_PRIVATE_URLS":                  "true",
		"PIGEONPOST_WEBHOOKS_ALLOW_HTTP":                          "true",
		"PIGEONPOST_DOMAINS_DKIM_SELECTOR":                        "pp2024",
		"PIGEONPOST_LOG_LEVEL":                                    "debug",
		"PIGEONPOST_SMTP_TLS_LISTEN":                              "",          // empty means unset: default kept
		"PIGEONPOST_DELIVERY_RELAY_HOST":                          "relay:587", // host:port string
		"PIGEONPOST_AUTH_FAILURE_DELAY":                           "0s",        // zero allowed
		"PIGEONPOST_LIMITS_BURST":                                 "9",         // beats the file's 7
		"PIGEONPOST_HTTP_MAX_BODY_BYTES":                          "1000",
		"PIGEONPOST_DELIVERY_MAX_AGE":                             "24h",
		"PIGEONPOST_DELIVERY_CLAIM_IDLE":                          "10m",
		"PIGEONPOST_DNS_RESOLVER":                                 "127.0.0.1:53",
		"PIGEONPOST_DELIVERY_MX_PORT":                             "2525",
		"PIGEONPOST_HTTP_ADMIN_LISTEN":                            "127.0.0.1:6060",
		"PIGEONPOST_SMTP_MAX_CONNECTIONS":                         "5",
		"PIGEONPOST_SMTP_READ_TIMEOUT":                            "5s",
		"PIGEONPOST_SMTP_WRITE_TIMEOUT":                           "6s",
		"PIGEONPOST_DELIVERY_TIMEOUT":                             "30s",
		"PIGEONPOST_DELIVERY_RETRY_MAX":                           "2h",
		"PIGEONPOST_LOG_FORMAT":                                   "json",
		"PIGEONPOST_DOMAINS_SPF_INCLUDE":                          "_spf.example.com",
		"PIGEONPOST_SMTP_HOSTNAME":                                "mx.example.com",
		"PIGEONPOST_SMTP_LISTEN":                                  ":1587",
		"PIGEONPOST_HTTP_LISTEN":                                  ":18080",
		"PIGEONPOST_TLS_CERT_FILE":                                "",
		"PIGEONPOST_TLS_KEY_FILE":                                 "",
		"PIGEONPOST_SMTP_MAX_RECIPIENTS_XXX":                      "not a key",
		"PIGEONPOST_SMTP_MAX_LINE_BYTES":                          "65536",
		"PIGEONPOST_DELIVERY_MAX_CONNECTIONS_PER_DESTINATION":     "4",
		"PIGEONPOST_DELIVERY_MESSAGES_PER_MINUTE_PER_DESTINATION": "600",
		"PIGEONPOST_DELIVERY_SUSPEND_MAX":                         "10m",
		"PIGEONPOST_DELIVERY_DESTINATION_GROUPS":                  "google=.google.com",
		"PIGEONPOST_REDIS_MIN_REPLICAS_ACKED":                     "1",
		"PIGEONPOST_REDIS_MIN_REPLICAS_TIMEOUT":                   "2s",
		"PIGEONPOST_REDIS_SHARDS":                                 "3",
		"PIGEONPOST_SMTP_PROXY_PROTOCOL":                          "true",
		"PIGEONPOST_SMTP_PROXY_TRUSTED":                           "10.0.0.0/8, 192.0.2.1",
	}))
	want := Config{
		SMTP: SMTP{Listen: ":1587", TLSListen: ":465", ReportsMailbox: "reports@mx.example.com", Hostname: "mx.example.com", MaxMessageBytes: 10485760,
			MaxRecipients: 42, MaxLineBytes: 65536, MaxConnections: 5, MaxConnectionsPerIP: 100, ReadTimeout: 5 * time.Second, WriteTimeout: 6 * time.Second,
			DataTimeout: 15 * time.Minute, DataMemoryBytes: 512 << 20, DataMemoryPerAccount: 128 << 20, MaxSessionTime: 30 * time.Minute,
			ProxyProtocol: true, ProxyTrusted: []string{"10.0.0.0/8", "192.0.2.1"}},
		HTTP: HTTP{Listen: ":18080", PublicURL: "https://example.com", MaxBodyBytes: 1000, AdminListen: "127.0.0.1:6060",
			ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 5 * time.Minute},
		Redis: Redis{URL: "redis://from-env:6379/1", RequireDurable: true, MinReplicasAcked: 1, MinReplicasTimeout: 2 * time.Second, Shards: 3},
		DNS:   DNS{Resolver: "127.0.0.1:53"},
		Delivery: Delivery{RelayHost: "relay:587", MXPort: 2525, Workers: 0, Timeout: 30 * time.Second,
			RetryInitial: 45 * time.Second, RetryMax: 2 * time.Hour, MaxAge: 24 * time.Hour,
			ClaimIdle: 10 * time.Minute, RequireTLS: true, BacklogLimit: 50000, InFlowDelay: time.Second,
			MaxConnectionsPerDestination: 4, MessagesPerMinutePerDestination: 600, SuspendMin: time.Minute, SuspendMax: 10 * time.Minute,
			DestinationGroups: "google=.google.com"},
		Auth:       Auth{BootstrapKey: "sp_test_0123456789abcdefghij", FailureDelay: 0},
		Limits:     Limits{RatePerSecond: 12.5, Burst: 9},
		Reputation: Default().Reputation,
		Retention:  Default().Retention,
		Tracking:   Tracking{Secret: "s3cret", BotWindow: 0, CNAMETarget: "t.example.com", MaxHitsPerIPPerMinute: 30},
		Webhooks: Webhooks{Workers: 2, Timeout: 10 * time.Second, RetryInitial: time.Second, RetryMax: time.Hour,
			MaxAge: 72 * time.Hour, ClaimIdle: time.Minute, AllowPrivateURLs: true, AllowHTTP: true},
		Domains: Domains{DKIMSelector: "pp2024", SPFInclude: "_spf.example.com"},
		Log:     Log{Level: "debug", Format: "json"},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("env overrides:\n got %+v\nwant %+v", c, want)
	}
}

// Every leaf has an environment variable, derived from its yaml tags.
func TestEnvCoversEveryKey(t *testing.T) {
	var c Config
	n := 0
	eachLeaf(&c, func(section, key string, v reflect.Value) {
		n++
		name := EnvName(section, key)
		if name != strings.ToUpper("PIGEONPOST_"+section+"_"+key) {
			t.Errorf("EnvName(%q, %q) = %q", section, key, name)
		}
		if err := setFromString(v, sampleValue(v)); err != nil {
			t.Errorf("%s: cannot be set from the environment: %v", name, err)
		}
	})
	if n != 84 {
		t.Errorf("walked %d keys, want 84", n)
	}
	for _, name := range []string{"PIGEONPOST_REDIS_URL", "PIGEONPOST_SMTP_MAX_MESSAGE_BYTES", "PIGEONPOST_DELIVERY_RETRY_INITIAL"} {
		found := false
		eachLeaf(&c, func(section, key string, _ reflect.Value) { found = found || EnvName(section, key) == name })
		if !found {
			t.Errorf("%s is not a recognised variable", name)
		}
	}
}

func sampleValue(v reflect.Value) string {
	if v.Type() == durationType {
		return "1s"
	}
	switch v.Kind() {
	case reflect.Bool:
		return "true"
	case reflect.String:
		return "x"
	default:
		return "1"
	}
}

func TestEnvParseErrorNamesVariable(t *testing.T) {
	cases := map[string]string{
		"PIGEONPOST_SMTP_MAX_RECIPIENTS":    "many",
		"PIGEONPOST_SMTP_MAX_MESSAGE_BYTES": "25MB",
		"PIGEONPOST_LIMITS_RATE_PER_SECOND": "fast",
		"PIGEONPOST_REDIS_REQUIRE_DURABLE":  "maybe",
		"PIGEONPOST_DELIVERY_RETRY_INITIAL": "60",
		"PIGEONPOST_DELIVERY_MX_PORT":       "99999999999999999999",
	}
	for name, val := range cases {
		_, err := Load("", env(map[string]string{name: val}))
		if err == nil {
			t.Errorf("%s=%q: no error", name, val)
			continue
		}
		if !strings.Contains(err.Error(), name+":") {
			t.Errorf("%s=%q: error %q does not name the variable", name, val, err)
		}
	}
	// All bad variables are reported together, on one line.
	_, err := Load("", env(cases))
	if err == nil {
		t.Fatal("no error for several bad variables")
	}
	msg := err.Error()
	for name := range cases {
		if !strings.Contains(msg, name) {
			t.Errorf("combined error %q misses %s", msg, name)
		}
	}
	if strings.ContainsAny(msg, "\n\r") {
		t.Errorf("combined error is not one line: %q", msg)
	}
}

func TestEnvAppliedAfterFileAndValidated(t *testing.T) {
	// A bad file value fixed by the environment loads.
	p := writeFile(t, "c.yaml", "log:\n  level: loud\n")
	c := mustLoad(t, p, env(map[string]string{"PIGEONPOST_LOG_LEVEL": "warn"}))
	if c.Log.Level != "warn" {
		t.Errorf("log.level = %q", c.Log.Level)
	}
	// A bad environment value is reported by its key.
	_, err := Load("", env(map[string]string{"PIGEONPOST_SMTP_LISTEN": "nope"}))
	if err == nil || !strings.Contains(err.Error(), "smtp.listen:") {
		t.Errorf("bad env listen: err = %v", err)
	}
}

func TestUnknownYAMLKeyRejected(t *testing.T) {
	p := writeFile(t, "c.yaml", "smtp:\n  listen: \":587\"\n  max_msg_size: 10\nredis:\n  uri: redis://x\nextra: 1\n")
	_, err := Load(p, noEnv)
	if err == nil {
		t.Fatal("unknown keys accepted")
	}
	for _, want := range []string{"smtp.max_msg_size: unknown key (line 3)", "redis.uri: unknown key (line 5)", "extra: unknown key (line 6)", p} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestBadConfigFiles(t *testing.T) {
	cases := map[string][]string{
		"bad-listen.yaml":           {`smtp.listen: missing port in address "127.0.0.1"`},
		"bad-cert-pair.yaml":        {"tls.key_file: required when tls.cert_file is set"},
		"bad-cert-missing.yaml":     {"tls.cert_file: open testdata/missing-cert.pem", "tls.key_file: open testdata/missing-key.pem"},
		"bad-public-url.yaml":       {"http.public_url: must be an absolute http:// or https:// URL"},
		"bad-public-url-query.yaml": {"http.public_url: must not have a query"},
		"bad-unknown-key.yaml":      {"smtp.max_mesage_bytes: unknown key (line 3)"},
		"bad-unknown-section.yaml":  {"smpt: unknown key (line 1)"},
		"bad-retry.yaml":            {"delivery.retry_initial: must not exceed delivery.retry_max (2h0m0s > 1h0m0s)"},
		"bad-redis-url.yaml":        {`redis.url: scheme must be redis, rediss, unix, redis+cluster or rediss+cluster (got "http")`},
		"bad-resolver.yaml":         {`dns.resolver: missing port in address "8.8.8.8"`},
		"bad-relay-host.yaml":       {"delivery.relay_host: port must be a number from 1 to 65535"},
		"bad-mx-port.yaml":          {"delivery.mx_port: must be between 1 and 65535 (got 0)"},
		"bad-workers.yaml":          {"delivery.workers: must be 0 or more (got -1)"},
		"bad-shaping.yaml": {"delivery.max_connections_per_destination: must be 0 (no limit) or more (got -1)",
			"delivery.messages_per_minute_per_destination: must be 0 (no limit) or more (got -2)",
			"delivery.suspend_min: must not exceed delivery.suspend_max (1h0m0s > 30m0s)",
			"delivery.destination_groups: group google: a host name suffix is empty or has a space or brace"},
		"bad-in-flow.yaml":             {"delivery.backlog_limit: must be 0 (off) or more (got -5)", "delivery.in_flow_delay: must be between 0 and 1m (got 2m0s)"},
		"bad-claim-idle.yaml":          {"delivery.claim_idle: must be longer than delivery.timeout"},
		"bad-bootstrap-key.yaml":       {"auth.bootstrap_key: must start with sp_live_ or sp_test_"},
		"bad-bootstrap-key-short.yaml": {"auth.bootstrap_key: must be at least 24 characters (got 13)"},
		"bad-limits.yaml":              {"limits.rate_per_second: must be greater than 0", "limits.burst: must be at least 1 (got 0)"},
		"bad-reputation.yaml": {"reputation.window: must be whole hours from 1h to 168h (got 1h30m0s)",
			"reputation.min_volume: must be at least 1 (got 0)", "reputation.max_bounce_rate: must be a fraction greater than 0 and at most 1 (got 5)",
			"reputation.max_complaint_rate: must be a fraction greater than 0 and at most 1 (got 0)"},
		"bad-log-level.yaml":   {`log.level: must be one of debug, info, warn, error (got "verbose")`},
		"bad-log-format.yaml":  {`log.format: must be text or json (got "xml")`},
		"bad-duration.yaml":    {"smtp.read_timeout: line 2: cannot unmarshal", "durations need a unit"},
		"bad-type.yaml":        {"smtp.max_recipients: line 2: cannot unmarshal !!str `lots` into int"},
		"bad-size.yaml":        {"smtp.max_message_bytes: must be greater than 0 (got 0)"},
		"bad-data-memory.yaml": {"smtp.data_memory_bytes: must be greater than 0 (got -1)"},
		"bad-memory-share.yaml": {"smtp.data_memory_per_account: must be at most smtp.data_memory_bytes, 1048576 (got 2097152)",
			"smtp.max_session_time: must be 0 (no limit) or more (got -1s)", "http.read_header_timeout: must be greater than 0 (got 0s)"},
		"bad-timeout.yaml":        {"smtp.data_timeout: must be greater than 0 (got 0s)"},
		"bad-duplicate-key.yaml":  {"smtp.listen: duplicate key (line 3, first at line 2)"},
		"bad-null-value.yaml":     {`smtp.tls_listen: line 2: no value (write "" for an empty string)`},
		"bad-section-scalar.yaml": {"smtp: line 1: must be a mapping of keys"},
		"bad-top-level.yaml":      {"line 1: the top level must be a mapping of sections"},
		"bad-two-documents.yaml":  {"a second YAML document (---) is not allowed"},
		"bad-syntax.yaml":         {"bad-syntax.yaml: line"},
		"bad-dkim-selector.yaml":  {`domains.dkim_selector: not a valid DNS name (got "bad selector")`},
		"bad-admin-listen.yaml":   {`http.admin_listen: port must be a number from 0 to 65535 (got "pprof")`},
		"bad-admin-public.yaml":   {`http.admin_listen: must listen on loopback (127.0.0.1, ::1 or localhost)`},
		"bad-multiple.yaml":       {"smtp.listen:", "http.public_url:", "log.level:"},
		"bad-webhooks.yaml":       {"webhooks.workers: must be 0 or more (got -2)", "webhooks.retry_initial: must not exceed webhooks.retry_max (2h0m0s > 1h0m0s)"},
		"bad-bot-window.yaml":     {"tracking.bot_window: must be 0 (disabled) or more (got -1s)"},
	}
	files, err := filepath.Glob("testdata/bad-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if _, ok := cases[filepath.Base(f)]; !ok {
			t.Errorf("%s has no expected error in the table", f)
		}
	}
	for name, wants := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("testdata", name)
			_, err := Load(path, noEnv)
			if err == nil {
				t.Fatalf("Load(%s) succeeded", path)
			}
			msg := err.Error()
			for _, want := range wants {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not contain %q", msg, want)
				}
			}
			if strings.ContainsAny(msg, "\n\r") {
				t.Errorf("error is not one line: %q", msg)
			}
			if strings.Contains(msg, "hunter2") {
				t.Errorf("error leaks the redis password: %q", msg)
			}
		})
	}
}

func TestMultipleProblemsOneLine(t *testing.T) {
	c := Default()
	c.SMTP.Listen = "localhost"
	c.SMTP.MaxRecipients = 0
	c.TLS.KeyFile = "/key.pem"
	c.HTTP.PublicURL = "https://example.com/?q=1"
	c.Redis.URL = "redis://:topsecret@/0"
	c.Delivery.RetryInitial = 2 * time.Hour
	c.Auth.BootstrapKey = "nope_0123456789abcdefghijkl"
	c.Limits.Burst = 0
	c.Log.Format = "yaml"

	err := c.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %T is not a *ValidationError", err)
	}
	wantKeys := []string{"smtp.listen", "smtp.max_recipients", "tls.cert_file", "http.public_url",
		"redis.url", "delivery.retry_initial", "auth.bootstrap_key", "limits.burst", "log.format"}
	if len(ve.Problems) != len(wantKeys) {
		t.Errorf("got %d problems, want %d: %q", len(ve.Problems), len(wantKeys), ve.Problems)
	}
	for i, k := range wantKeys {
		if i < len(ve.Problems) && !strings.HasPrefix(ve.Problems[i], k+": ") {
			t.Errorf("problem %d = %q, want prefix %q", i, ve.Problems[i], k+": ")
		}
	}
	msg := err.Error()
	if strings.ContainsAny(msg, "\n\r") {
		t.Errorf("not one line: %q", msg)
	}
	if got := strings.Count(msg, "; "); got != len(wantKeys)-1 {
		t.Errorf("%d separators in %q, want %d", got, msg, len(wantKeys)-1)
	}
	for _, secret := range []string{"topsecret", "nope_0123456789abcdefghijkl"} {
		if strings.Contains(msg, secret) {
			t.Errorf("error leaks a secret %q: %q", secret, msg)
		}
	}

	// Load wraps the same error.
	p := writeFile(t, "c.yaml", "smtp:\n  listen: localhost\nlimits:\n  burst: 0\n")
	_, err = Load(p, noEnv)
	if !errors.As(err, &ve) || len(ve.Problems) != 2 {
		t.Errorf("Load error %v does not wrap a 2-problem *ValidationError", err)
	}
	if !strings.Contains(err.Error(), "smtp.listen: missing port in address") ||
		!strings.Contains(err.Error(), "; limits.burst:") {
		t.Errorf("Load error = %q", err)
	}
}

func TestValidateRules(t *testing.T) {
	dir := t.TempDir()
	cert := filepath.Join(dir, "cert.pem")
	key := filepath.Join(dir, "key.pem")
	for _, f := range []string{cert, key} {
		if err := os.WriteFile(f, []byte("pem"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name   string
		mutate func(*Config)
		want   string // "" means valid
	}{
		{"cert pair present", func(c *Config) { c.TLS.CertFile, c.TLS.KeyFile = cert, key }, ""},
		{"cert is a dir", func(c *Config) { c.TLS.CertFile, c.TLS.KeyFile = dir, key }, "tls.cert_file: " + dir + " is a directory"},
		{"key only", func(c *Config) { c.TLS.KeyFile = key }, "tls.cert_file: required when tls.key_file is set"},
		{"listen port 0", func(c *Config) { c.SMTP.Listen = "127.0.0.1:0" }, ""},
		{"listen ipv6", func(c *Config) { c.SMTP.Listen = "[::1]:587" }, ""},
		{"listen empty", func(c *Config) { c.SMTP.Listen = "" }, "smtp.listen: required"},
		{"http listen empty", func(c *Config) { c.HTTP.Listen = "" }, "http.listen: required"},
		{"listen no port", func(c *Config) { c.HTTP.Listen = "127.0.0.1:" }, "http.listen: missing port number"},
		{"tls_listen off", func(c *Config) { c.SMTP.TLSListen = "" }, ""},
		{"tls_listen bad", func(c *Config) { c.SMTP.TLSListen = "465" }, "smtp.tls_listen: missing port in address"},
		{"hostname empty", func(c *Config) { c.SMTP.Hostname = "" }, "smtp.hostname: required"},
		{"hostname space", func(c *Config) { c.SMTP.Hostname = "mail example" }, "smtp.hostname: must not contain spaces"},
		{"max_connections 0", func(c *Config) { c.SMTP.MaxConnections = 0 }, "smtp.max_connections: must be greater than 0"},
		{"max_body 0", func(c *Config) { c.HTTP.MaxBodyBytes = -1 }, "http.max_body_bytes: must be greater than 0"},
		{"write_timeout 0", func(c *Config) { c.SMTP.WriteTimeout = 0 }, "smtp.write_timeout: must be greater than 0"},
		{"read_timeout neg", func(c *Config) { c.SMTP.ReadTimeout = -time.Second }, "smtp.read_timeout: must be greater than 0"},
		{"delivery timeout 0", func(c *Config) { c.Delivery.Timeout = 0 }, "delivery.timeout: must be greater than 0"},
		{"max_age 0", func(c *Config) { c.Delivery.MaxAge = 0 }, "delivery.max_age: must be greater than 0"},
		{"retry_max 0", func(c *Config) { c.Delivery.RetryMax = 0 }, "delivery.retry_max: must be greater than 0"},
		{"retry equal", func(c *Config) { c.Delivery.RetryInitial = time.Hour }, ""},
		{"claim_idle 0", func(c *Config) { c.Delivery.ClaimIdle = 0 }, "delivery.claim_idle: must be greater than 0"},
		{"failure_delay 0", func(c *Config) { c.Auth.FailureDelay = 0 }, ""},
		{"failure_delay neg", func(c *Config) { c.Auth.FailureDelay = -1 }, "auth.failure_delay: must be 0 (disabled) or more"},
		{"public_url https path", func(c *Config) { c.HTTP.PublicURL = "https://example.com:8443/pp" }, ""},
		{"public_url empty", func(c *Config) { c.HTTP.PublicURL = "" }, "http.public_url: required"},
		{"public_url relative", func(c *Config) { c.HTTP.PublicURL = "/pp" }, "http.public_url: must be an absolute"},
		{"public_url no host", func(c *Config) { c.HTTP.PublicURL = "http:///pp" }, "http.public_url: missing host"},
		{"public_url empty query", func(c *Config) { c.HTTP.PublicURL = "http://example.com?" }, "http.public_url: must not have a query"},
		{"public_url fragment", func(c *Config) { c.HTTP.PublicURL = "http://example.com/#x" }, "http.public_url: must not have a fragment"},
		{"public_url userinfo", func(c *Config) { c.HTTP.PublicURL = "http://u:p@example.com" }, "http.public_url: must not contain a user name"},
		{"public_url ftp", func(c *Config) { c.HTTP.PublicURL = "ftp://example.com" }, "http.public_url: must be an absolute"},
		{"redis plain", func(c *Config) { c.Redis.URL = "redis://localhost:6379/0" }, ""},
		{"redis tls auth", func(c *Config) { c.Redis.URL = "rediss://user:pw@redis.example.com:6380" }, ""},
		{"redis unix", func(c *Config) { c.Redis.URL = "unix:///run/redis/redis.sock" }, ""},
		{"redis unix no path", func(c *Config) { c.Redis.URL = "unix://" }, "redis.url: missing socket path"},
		{"redis no host", func(c *Config) { c.Redis.URL = "redis:///0" }, "redis.url: missing host"},
		{"redis bad db", func(c *Config) { c.Redis.URL = "redis://localhost/zero" }, "redis.url: database must be a number"},
		{"redis bad port", func(c *Config) { c.Redis.URL = "redis://:pw@localhost:0" }, "redis.url: port must be a number"},
		{"redis no scheme", func(c *Config) { c.Redis.URL = "localhost:6379" }, "redis.url: "},
		{"redis unparsable", func(c *Config) { c.Redis.URL = "redis://:pw@local host" }, "redis.url: invalid URL"},
		{"redis cluster url", func(c *Config) { c.Redis.URL = "redis+cluster://:pw@10.0.0.1:6379,10.0.0.2:6379" }, ""},
		{"redis cluster url one node", func(c *Config) { c.Redis.URL = "rediss+cluster://10.0.0.1:6379" }, ""},
		{"redis cluster url no port", func(c *Config) { c.Redis.URL = "redis+cluster://10.0.0.1,10.0.0.2:6379" }, `redis.url: missing port in address "10.0.0.1"`},
		{"redis cluster url db", func(c *Config) { c.Redis.URL = "redis+cluster://10.0.0.1:6379/2" }, "redis.url: a cluster has only database 0"},
		{"redis cluster flag url", func(c *Config) { c.Redis.URL, c.Redis.Cluster = "redis://10.0.0.1:6379", true }, ""},
		{"redis cluster unix", func(c *Config) { c.Redis.URL, c.Redis.Cluster = "unix:///run/redis.sock", true }, "redis.cluster: a cluster is reached over TCP"},
		{"redis cluster one addr", func(c *Config) { c.Redis.Addrs, c.Redis.Cluster = []string{"10.0.0.1:6379"}, true }, ""},
		{"redis cluster addrs", func(c *Config) { c.Redis.Addrs, c.Redis.Cluster = []string{"10.0.0.1:6379", "10.0.0.2:6379"}, true }, ""},
		{"redis cluster nothing", func(c *Config) { c.Redis.Cluster = true }, "redis.cluster: needs the nodes in redis.addrs"},
		{"redis addrs and url", func(c *Config) { c.Redis.URL, c.Redis.Addrs = "redis://a:1", []string{"b:1"} }, "redis.addrs: set redis.url or redis.addrs, not both"},
		{"redis addrs bad", func(c *Config) { c.Redis.Addrs = []string{"10.0.0.1"} }, `redis.addrs: missing port in address "10.0.0.1"`},
		{"redis addrs several", func(c *Config) { c.Redis.Addrs = []string{"a:1", "b:1"} }, "redis.addrs: several addresses need redis.cluster: true or redis.sentinel_master"},
		{"redis one addr", func(c *Config) { c.Redis.Addrs, c.Redis.Password = []string{"a:1"}, "pw" }, ""},
		{"redis sentinel", func(c *Config) { c.Redis.Addrs, c.Redis.SentinelMaster = []string{"a:26379", "b:26379"}, "mymaster" }, ""},
		{"redis sentinel no addrs", func(c *Config) { c.Redis.SentinelMaster = "mymaster" }, "redis.addrs: required with redis.sentinel_master"},
		{"redis sentinel cluster", func(c *Config) { c.Redis.Addrs, c.Redis.SentinelMaster, c.Redis.Cluster = []string{"a:1"}, "m", true }, "redis.sentinel_master: cannot be combined with a cluster"},
		{"redis password with url", func(c *Config) { c.Redis.URL, c.Redis.Password = "redis://a:1", "pw" }, "redis.password: goes with redis.addrs"},
		{"min replicas", func(c *Config) { c.Redis.URL, c.Redis.MinReplicasAcked = "redis://a:1", 1 }, ""},
		{"shards zero", func(c *Config) { c.Redis.Shards = 0 }, "redis.shards: must be 1 to 16"},
		{"shards too many", func(c *Config) { c.Redis.Shards = 17 }, "redis.shards: must be 1 to 16"},
		{"min replicas negative", func(c *Config) { c.Redis.MinReplicasAcked = -1 }, "redis.min_replicas_acked: must be 0 (off) or more"},
		{"min replicas embedded", func(c *Config) { c.Redis.MinReplicasAcked = 1 }, "redis.min_replicas_acked: needs a Redis with replicas"},
		{"min replicas no timeout", func(c *Config) {
			c.Redis.URL, c.Redis.MinReplicasAcked, c.Redis.MinReplicasTimeout = "redis://a:1", 1, 0
		}, "redis.min_replicas_timeout: must be greater than 0"},
		{"proxy protocol", func(c *Config) {
			c.SMTP.ProxyProtocol, c.SMTP.ProxyTrusted = true, []string{"10.0.0.0/8", "192.0.2.7", "2001:db8::/32"}
		}, ""},
		{"proxy protocol no trusted", func(c *Config) { c.SMTP.ProxyProtocol = true }, "smtp.proxy_trusted: required with smtp.proxy_protocol"},
		{"proxy trusted bad", func(c *Config) { c.SMTP.ProxyTrusted = []string{"10.0.0.0/33"} }, `smtp.proxy_trusted: "10.0.0.0/33" is not a CIDR`},
		{"proxy trusted name", func(c *Config) { c.SMTP.ProxyTrusted = []string{"lb.example.com"} }, `smtp.proxy_trusted: "lb.example.com" is not a CIDR`},
		{"resolver ok", func(c *Config) { c.DNS.Resolver = "[2001:db8::1]:53" }, ""},
		{"resolver no host", func(c *Config) { c.DNS.Resolver = ":53" }, "dns.resolver: missing host"},
		{"relay ok", func(c *Config) { c.Delivery.RelayHost = "smtp.example.com:587" }, ""},
		{"relay no port", func(c *Config) { c.Delivery.RelayHost = "smtp.example.com" }, "delivery.relay_host: missing port in address"},
		{"mx_port high", func(c *Config) { c.Delivery.MXPort = 65536 }, "delivery.mx_port: must be between 1 and 65535"},
		{"workers 0", func(c *Config) { c.Delivery.Workers = 0 }, ""},
		{"bootstrap live", func(c *Config) { c.Auth.BootstrapKey = "sp_live_0123456789abcdefghij" }, ""},
		{"bootstrap space", func(c *Config) { c.Auth.BootstrapKey = "sp_live_0123456789abcdefghij\n" }, "auth.bootstrap_key: must not contain spaces"},
		{"rate NaN", func(c *Config) { c.Limits.RatePerSecond = nan() }, "limits.rate_per_second: must be greater than 0"},
		{"rate negative", func(c *Config) { c.Limits.RatePerSecond = -1 }, "limits.rate_per_second: must be greater than 0"},
		{"rate fraction", func(c *Config) { c.Limits.RatePerSecond = 0.5 }, ""},
		{"burst 1", func(c *Config) { c.Limits.Burst = 1 }, ""},
		{"dkim empty", func(c *Config) { c.Domains.DKIMSelector = "" }, "domains.dkim_selector: required"},
		{"dkim dotted", func(c *Config) { c.Domains.DKIMSelector = "pp.2024" }, ""},
		{"spf ok", func(c *Config) { c.Domains.SPFInclude = "_spf.example.com" }, ""},
		{"reports mailbox", func(c *Config) { c.SMTP.ReportsMailbox = "fbl" }, `smtp.reports_mailbox: must be an address, local@domain (got "fbl")`},
		{"secrets", func(c *Config) { c.Tracking.Secret = "new-secret, old-secret" }, ""},
		{"an empty secret", func(c *Config) { c.Tracking.Secret = "new-secret,,old" }, "tracking.secret: an empty secret in the list"},
		{"spf bad", func(c *Config) { c.Domains.SPFInclude = "_spf..example.com" }, "domains.spf_include: not a valid DNS name"},
		{"log level case", func(c *Config) { c.Log.Level = "INFO" }, "log.level: must be one of"},
		{"log warn", func(c *Config) { c.Log.Level = "warn" }, ""},
		{"bot_window 0", func(c *Config) { c.Tracking.BotWindow = 0 }, ""},
		{"bot_window neg", func(c *Config) { c.Tracking.BotWindow = -time.Second }, "tracking.bot_window: must be 0 (disabled) or more"},
		{"cname_target bad", func(c *Config) { c.Tracking.CNAMETarget = "t..example.com" }, "tracking.cname_target: not a valid DNS name"},
		{"hits per ip off", func(c *Config) { c.Tracking.MaxHitsPerIPPerMinute = 0 }, ""},
		{"hits per ip neg", func(c *Config) { c.Tracking.MaxHitsPerIPPerMinute = -1 }, "tracking.max_hits_per_ip_per_minute: must be 0 (no limit) or more (got -1)"},
		{"webhook workers 0", func(c *Config) { c.Webhooks.Workers = 0 }, ""},
		{"webhook workers neg", func(c *Config) { c.Webhooks.Workers = -1 }, "webhooks.workers: must be 0 or more"},
		{"webhook timeout 0", func(c *Config) { c.Webhooks.Timeout = 0 }, "webhooks.timeout: must be greater than 0"},
		{"webhook retry order", func(c *Config) { c.Webhooks.RetryInitial = 2 * time.Hour }, "webhooks.retry_initial: must not exceed webhooks.retry_max"},
		{"webhook max_age short", func(c *Config) { c.Webhooks.MaxAge = time.Second }, "webhooks.max_age: must not be shorter than webhooks.retry_initial"},
		{"webhook claim_idle 0", func(c *Config) { c.Webhooks.ClaimIdle = 0 }, "webhooks.claim_idle: must be greater than 0"},
		{"attachments ca_file missing", func(c *Config) { c.Attachments.CAFile = "/nonexistent/ca.pem" }, "attachments.ca_file:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.mutate(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.want != "" && err == nil:
				t.Errorf("no error, want %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "pw@") {
				t.Errorf("error leaks the redis password: %q", err)
			}
		})
	}
}

func nan() float64 {
	zero := 0.0
	return zero / zero
}

func TestRedacted(t *testing.T) {
	c := Default()
	c.Auth.BootstrapKey = "sp_live_0123456789abcdefghij"
	c.Tracking.Secret = "tracking-secret-value"
	c.Redis.URL = "rediss://default:redis-password@redis.example.com:6380/1"
	r := c.Redacted()
	if r.Auth.BootstrapKey != "REDACTED" || r.Tracking.Secret != "REDACTED" {
		t.Errorf("secrets not redacted: %+v %+v", r.Auth, r.Tracking)
	}
	if want := "rediss://default:REDACTED@redis.example.com:6380/1"; r.Redis.URL != want {
		t.Errorf("redis.url = %q, want %q", r.Redis.URL, want)
	}
	if c.Auth.BootstrapKey != "sp_live_0123456789abcdefghij" || c.Redis.URL == r.Redis.URL {
		t.Error("Redacted modified its receiver")
	}
	if !reflect.DeepEqual(r.SMTP, c.SMTP) || r.HTTP != c.HTTP || r.Delivery != c.Delivery {
		t.Error("Redacted changed non-secret keys")
	}
	if dump, _ := yaml.Marshal(r); strings.Contains(string(dump), "secret-value") ||
		strings.Contains(string(dump), "redis-password") || strings.Contains(string(dump), "0123456789abcdefghij") {
		t.Errorf("marshalled redacted config leaks a secret:\n%s", dump)
	}

	redisCases := map[string]string{
		"":                            "",
		"redis://localhost:6379/0":    "redis://localhost:6379/0",
		"redis://:pw@localhost:6379":  "redis://:REDACTED@localhost:6379",
		"redis://user@localhost:6379": "redis://user@localhost:6379",
		"unix:///run/redis.sock?password=pw&db=2": "unix:///run/redis.sock?db=2&password=REDACTED",
		"redis://:pw@local host":                  "REDACTED",
	}
	for in, want := range redisCases {
		c := Config{Redis: Redis{URL: in}}
		if got := c.Redacted().Redis.URL; got != want {
			t.Errorf("Redacted redis.url %q = %q, want %q", in, got, want)
		}
	}
	// Empty secrets stay empty so the log shows they are unset.
	if r := Default().Redacted(); r.Auth.BootstrapKey != "" || r.Tracking.Secret != "" {
		t.Errorf("empty secrets became %+v %+v", r.Auth, r.Tracking)
	}
}

func TestExampleAndDevFilesLoad(t *testing.T) {
	ex := mustLoad(t, "example.yaml", noEnv)
	if ex.Redis.URL == "" || !ex.Redis.RequireDurable {
		t.Errorf("example should use an external, durable Redis: %+v", ex.Redis)
	}
	if ex.Domains.SPFInclude != "_spf."+ex.SMTP.Hostname {
		t.Errorf("example spf_include = %q", ex.Domains.SPFInclude)
	}

	dev := mustLoad(t, "dev.yaml", noEnv)
	want := map[string][2]string{
		"smtp.listen":     {dev.SMTP.Listen, "127.0.0.1:2587"},
		"smtp.tls_listen": {dev.SMTP.TLSListen, "127.0.0.1:2465"},
		"smtp.hostname":   {dev.SMTP.Hostname, "localhost"},
		"http.listen":     {dev.HTTP.Listen, "127.0.0.1:8080"},
		"http.public_url": {dev.HTTP.PublicURL, "http://localhost:8080"},
		"redis.url":       {dev.Redis.URL, ""},
	}
	for k, v := range want {
		if v[0] != v[1] {
			t.Errorf("dev %s = %q, want %q", k, v[0], v[1])
		}
	}
	if dev.Delivery.Workers != Default().Delivery.Workers {
		t.Errorf("dev delivery.workers = %d, want the default %d", dev.Delivery.Workers, Default().Delivery.Workers)
	}
}

// example.yaml documents every key, each with a comment, and nothing else.
func TestExampleHasEveryKey(t *testing.T) {
	data, err := os.ReadFile("example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	root := doc.Content[0]
	for i := 0; i+1 < len(root.Content); i += 2 {
		section := root.Content[i].Value
		m := root.Content[i+1]
		for j := 0; j+1 < len(m.Content); j += 2 {
			k, v := m.Content[j], m.Content[j+1]
			got[section+"."+k.Value] = true
			if strings.TrimSpace(v.LineComment) == "" && strings.TrimSpace(k.LineComment) == "" {
				t.Errorf("example.yaml: %s.%s has no comment", section, k.Value)
			}
		}
	}
	var want []string
	var c Config
	eachLeaf(&c, func(section, key string, _ reflect.Value) { want = append(want, section+"."+key) })
	for _, k := range want {
		if !got[k] {
			t.Errorf("example.yaml lacks %s", k)
		}
		delete(got, k)
	}
	var extra []string
	for k := range got {
		extra = append(extra, k)
	}
	sort.Strings(extra)
	if len(extra) > 0 {
		t.Errorf("example.yaml has keys Config lacks: %v", extra)
	}
	for _, advice := range []string{"appendonly yes", "appendfsync always", "maxmemory-policy noeviction"} {
		if !strings.Contains(string(data), advice) {
			t.Errorf("example.yaml lacks the Redis advice %q", advice)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"), noEnv)
	if err == nil || !strings.Contains(err.Error(), "nope.yaml") {
		t.Errorf("err = %v, want it to name the file", err)
	}
}

func TestYAMLAnchorsAndMerge(t *testing.T) {
	p := writeFile(t, "c.yaml", `
x-timeouts: &t
  read_timeout: 30s
  write_timeout: 30s
`)
	if _, err := Load(p, noEnv); err == nil || !strings.Contains(err.Error(), "x-timeouts: unknown key") {
		t.Errorf("err = %v", err)
	}
	p = writeFile(t, "c.yaml", `
smtp:
  listen: &addr "127.0.0.1:2587"
http:
  admin_listen: *addr
`)
	c := mustLoad(t, p, noEnv)
	if c.HTTP.AdminListen != "127.0.0.1:2587" {
		t.Errorf("alias not followed: %q", c.HTTP.AdminListen)
	}
}

func TestNilGetenvUsesProcessEnvironment(t *testing.T) {
	t.Setenv("PIGEONPOST_LOG_LEVEL", "error")
	c := mustLoad(t, "", nil)
	if c.Log.Level != "error" {
		t.Errorf("log.level = %q, want error from the process environment", c.Log.Level)
	}
}

func TestParseDestinationGroups(t *testing.T) {
	got, err := ParseDestinationGroups(" google=.google.com, .GoogleMail.com ; microsoft=.outlook.com")
	want := []DestinationGroup{{"google", []string{".google.com", ".googlemail.com"}}, {"microsoft", []string{".outlook.com"}}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v %v, want %+v", got, err, want)
	}
	if got, err := ParseDestinationGroups(""); got != nil || err != nil {
		t.Errorf(`"": %+v %v, want nil (the built-in groups)`, got, err)
	}
	if got, err := ParseDestinationGroups("-"); got == nil || len(got) != 0 || err != nil {
		t.Errorf(`"-": %+v %v, want no groups`, got, err)
	}
	for _, bad := range []string{"google", "=.google.com", "google=", "a b=.x", "g=.x,,.y"} {
		if _, err := ParseDestinationGroups(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// redis.addrs is a YAML list, or a comma-separated list in its variable;
// redis.password is a secret.
func TestRedisAddrs(t *testing.T) {
	p := writeFile(t, "c.yaml", "redis:\n  addrs: [\"10.0.0.1:6379\", \"10.0.0.2:6379\"]\n  cluster: true\n  password: s3cret\n")
	c := mustLoad(t, p, env(nil))
	if want := []string{"10.0.0.1:6379", "10.0.0.2:6379"}; !reflect.DeepEqual(c.Redis.Addrs, want) || !c.Redis.Cluster {
		t.Errorf("from the file: addrs %q cluster %v, want %q", c.Redis.Addrs, c.Redis.Cluster, want)
	}
	if got := c.Redacted().Redis.Password; got != "REDACTED" {
		t.Errorf("redacted password = %q", got)
	}
	c = mustLoad(t, p, env(map[string]string{"PIGEONPOST_REDIS_ADDRS": " s1:26379, s2:26379,,s3:26379 ", "PIGEONPOST_REDIS_CLUSTER": "false",
		"PIGEONPOST_REDIS_SENTINEL_MASTER": "mymaster"}))
	if want := []string{"s1:26379", "s2:26379", "s3:26379"}; !reflect.DeepEqual(c.Redis.Addrs, want) || c.Redis.SentinelMaster != "mymaster" {
		t.Errorf("from the environment: addrs %q sentinel_master %q, want %q", c.Redis.Addrs, c.Redis.SentinelMaster, want)
	}
}
