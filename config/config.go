// Package config loads pigeonpost's configuration: defaults, then a YAML
// file, then PIGEONPOST_* environment variables, then validation that names
// every bad key.
//
// Keys are written section.key in YAML ("smtp.listen" is the listen key of
// the smtp section) and PIGEONPOST_SECTION_KEY in the environment
// (PIGEONPOST_SMTP_LISTEN). Every problem found is reported in one error,
// each prefixed by the key it concerns.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is pigeonpost's whole configuration. The zero value is not useful:
// start from Default or Load.
type Config struct {
	SMTP       SMTP       `yaml:"smtp"`
	TLS        TLS        `yaml:"tls"`
	HTTP       HTTP       `yaml:"http"`
	Redis      Redis      `yaml:"redis"`
	DNS        DNS        `yaml:"dns"`
	Delivery   Delivery   `yaml:"delivery"`
	Auth       Auth       `yaml:"auth"`
	Limits     Limits     `yaml:"limits"`
	Reputation Reputation `yaml:"reputation"`
	Retention  Retention  `yaml:"retention"`
	Tracking   Tracking   `yaml:"tracking"`
	Webhooks   Webhooks   `yaml:"webhooks"`
	Domains    Domains    `yaml:"domains"`
	Log        Log        `yaml:"log"`

	Attachments Attachments `yaml:"attachments"`
}

// SMTP configures the submission server.
type SMTP struct {
	Listen    string `yaml:"listen"`     // ":587", STARTTLS mandatory
	TLSListen string `yaml:"tls_listen"` // ":465", implicit TLS; "" disables
	// MailboxListen serves the gateway's own mailboxes (port 25, where
	// hostname's MX points): unsubscribe@hostname, the mailto of the
	// sends' List-Unsubscribe header, and ReportsMailbox, where feedback
	// loops and remote servers send complaints (ARF) and late bounces
	// (DSN). "" disables them: the header carries the https link only, and
	// reports come only through POST /v1/inbound/fbl.
	MailboxListen string `yaml:"mailbox_listen"`
	// ReportsMailbox is the address of the reports mailbox; "" is
	// reports@hostname.
	ReportsMailbox  string `yaml:"reports_mailbox"`
	Hostname        string `yaml:"hostname"`          // default os.Hostname(), else "localhost"
	MaxMessageBytes int64  `yaml:"max_message_bytes"` // 25 MiB
	MaxRecipients   int    `yaml:"max_recipients"`    // 100
	// MaxLineBytes bounds one line, CRLF included, of a command or of
	// DATA. DATA lines over 998 octets are re-encoded before relaying;
	// longer than this, the message is refused (554 5.6.0) and the
	// connection closed. Each connection may hold this much for a command.
	MaxLineBytes   int `yaml:"max_line_bytes"`  // 256 KiB
	MaxConnections int `yaml:"max_connections"` // 1000
	// MaxConnectionsPerIP caps one client address's connections, so that
	// one host cannot hold every slot; 0: no cap.
	MaxConnectionsPerIP int           `yaml:"max_connections_per_ip"` // 100
	ReadTimeout         time.Duration `yaml:"read_timeout"`           // 60s
	WriteTimeout        time.Duration `yaml:"write_timeout"`          // 60s
	DataTimeout         time.Duration `yaml:"data_timeout"`           // 10m
	DataMemoryBytes     int64         `yaml:"data_memory_bytes"`      // 256 MiB of message contents in flight: SMTP messages and REST bodies over 64 KiB (~5x their size each) and bodies being delivered wait for their share
	// DataMemoryPerAccount caps what one account's messages being received
	// hold of DataMemoryBytes at once (at least one message of the largest
	// size); past it a message is refused at once with a temporary error
	// instead of waiting, so one account cannot starve the others. 0: no cap.
	DataMemoryPerAccount int64 `yaml:"data_memory_per_account"` // 128 MiB
	// MaxSessionTime is the longest an SMTP connection stays open: then it is
	// answered 421 and closed, and its client reconnects. 0: no limit.
	MaxSessionTime time.Duration `yaml:"max_session_time"` // 30m
	// ProxyProtocol makes the submission listeners (listen, tls_listen)
	// expect a PROXY protocol header (v1 or v2) from a load balancer, so
	// that the client's own address reaches the per-IP limits, AUTH
	// throttling and logs. Only ProxyTrusted may connect, and must send it.
	ProxyProtocol bool     `yaml:"proxy_protocol"`
	ProxyTrusted  []string `yaml:"proxy_trusted"` // CIDRs or IPs of the load balancers
}

// TLS names the certificate served by the SMTP listeners. Both empty means a
// self-signed certificate is generated at start (not this package's job).
type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// HTTP configures the API server.
type HTTP struct {
	Listen       string `yaml:"listen"`         // ":8080"
	PublicURL    string `yaml:"public_url"`     // "http://localhost:8080"; absolute http(s), no query; Load trims a trailing slash
	MaxBodyBytes int64  `yaml:"max_body_bytes"` // 35 MiB
	// ReadHeaderTimeout bounds reading a request's headers, ReadTimeout
	// reading a whole request, its body included: a client that sends
	// slowly is cut off, and what it held is freed.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"` // 10s
	ReadTimeout       time.Duration `yaml:"read_timeout"`        // 5m
	AdminListen       string        `yaml:"admin_listen"`        // "" (off): the operator's API (/admin/v1/) and pprof, no key: loopback only
}

// Redis configures the queue and state store.
type Redis struct {
	// URL is one server, or a cluster as redis+cluster://h1:p1,h2:p2 (or
	// rediss+cluster://); "" with no Addrs → embedded in-memory server.
	URL string `yaml:"url"`
	// Addrs, instead of URL, lists host:port: a cluster's nodes with
	// Cluster, the Sentinels with SentinelMaster, else the one server.
	Addrs          []string `yaml:"addrs"`
	Cluster        bool     `yaml:"cluster"`         // Redis Cluster, seeded by Addrs or URL
	SentinelMaster string   `yaml:"sentinel_master"` // master name: fail over through the Sentinels at Addrs
	Password       string   `yaml:"password"`        // with Addrs; a URL carries its own
	RequireDurable bool     `yaml:"require_durable"` // /healthz not ready when acknowledged mail could be lost
	// MinReplicasAcked: a submission is acknowledged only once this many
	// replicas have its writes (WAIT), within MinReplicasTimeout; else the
	// client is told to retry. 0: off, acknowledged once the master has it.
	MinReplicasAcked   int           `yaml:"min_replicas_acked"`   // 0
	MinReplicasTimeout time.Duration `yaml:"min_replicas_timeout"` // 1s
	// Shards is the number of hash tags the mail is spread over (in a
	// cluster, over the masters); 1 keeps it all under {q}. Changing it is
	// safe: ids carry their shard, and the shards no longer written to
	// drain (pipeline/store/keys.go).
	Shards int `yaml:"shards"` // 1
}

// DNS configures lookups.
type DNS struct {
	Resolver string `yaml:"resolver"` // "host:port"; "" → system resolver
}

// Delivery configures outbound delivery.
type Delivery struct {
	RelayHost    string        `yaml:"relay_host"`    // "host:port" smarthost; "" → direct MX
	MXPort       int           `yaml:"mx_port"`       // 25
	Workers      int           `yaml:"workers"`       // 8; 0 allowed (no delivery in this process)
	Timeout      time.Duration `yaml:"timeout"`       // 2m per attempt
	RetryInitial time.Duration `yaml:"retry_initial"` // 1m
	RetryMax     time.Duration `yaml:"retry_max"`     // 1h
	MaxAge       time.Duration `yaml:"max_age"`       // 72h, then failed
	ClaimIdle    time.Duration `yaml:"claim_idle"`    // 5m: entries a dead worker left are reclaimed after this idle time
	RequireTLS   bool          `yaml:"require_tls"`   // false
	// AllowPrivateDestinations lets mail go to recipient hosts at
	// loopback, private and link-local addresses: an intranet relay may,
	// a multi-tenant gateway must not (anyone could reach the internal
	// network's port 25 through it). relay_host is the operator's and is
	// never checked.
	AllowPrivateDestinations bool `yaml:"allow_private_destinations"` // false
	// In-flow control: with more than BacklogLimit messages queued for
	// delivery, each submission waits InFlowDelay before it is stored.
	BacklogLimit int           `yaml:"backlog_limit"` // 50000; 0 disables
	InFlowDelay  time.Duration `yaml:"in_flow_delay"` // 1s
	// Traffic shaping per destination (an MX host, or a provider group of
	// DestinationGroups), over all processes sharing the Redis.
	MaxConnectionsPerDestination    int           `yaml:"max_connections_per_destination"`     // 10; 0: no limit
	MessagesPerMinutePerDestination int           `yaml:"messages_per_minute_per_destination"` // 0: no limit
	SuspendMin                      time.Duration `yaml:"suspend_min"`                         // 1m: a destination's first suspension after a back-off reply
	SuspendMax                      time.Duration `yaml:"suspend_max"`                         // 30m: doubling up to this
	// DestinationGroups names providers whose MX hosts are one
	// destination: "name=.suffix,.suffix;name=..."; "" the built-in list
	// (google, microsoft, yahoo, apple); "-" none.
	DestinationGroups string `yaml:"destination_groups"`
}

// Auth configures API key authentication.
type Auth struct {
	BootstrapKey string        `yaml:"bootstrap_key"` // "" none; else sp_live_/sp_test_ prefix and ≥ 24 chars
	FailureDelay time.Duration `yaml:"failure_delay"` // 1s per recent failure from one IP, capped at 5x; 0 disables
	// LockOutPrivateAddresses locks out, after 20 failures in 10 minutes,
	// loopback and private client addresses too, not only public ones: set
	// it when no proxy or load balancer stands in front of the clients. It
	// applies tracking.max_hits_per_ip_per_minute to them too.
	LockOutPrivateAddresses bool `yaml:"lockout_private_addresses"` // false
}

// Retention says how long finished mail stays in Redis. A finished email is
// delivered, bounced, failed or (test mode) sent; 0 keeps it forever.
type Retention struct {
	Content time.Duration `yaml:"content"` // 168h: the MIME, for GET /v1/emails/:id/content
	Records time.Duration `yaml:"records"` // 720h: the email record and its events
}

// Limits configures per-account rate limiting.
type Limits struct {
	RatePerSecond float64 `yaml:"rate_per_second"` // 100 messages/s per account
	Burst         int     `yaml:"burst"`           // 200
	// MonthlyEmails is each account's monthly email limit (a calendar
	// month, UTC), unless the account has its own (pigeonpost accounts
	// limit); 0: none.
	MonthlyEmails int64 `yaml:"monthly_emails"`
}

// Reputation configures the guard that pauses an account's sending when
// its mail bounces or draws complaints too often (pipeline/reputation).
// The rates are measured over the sends of the last Window: bounces over
// delivered and bounced mail, complaints over delivered mail, once at least
// MinVolume sends were made in it. The defaults follow the large mailbox
// providers' guidance: they start refusing a sender near a 0.3 %
// complaint rate, and a list that bounces 5 % is a bad list.
type Reputation struct {
	AutoPause        bool          `yaml:"auto_pause"`         // true
	Window           time.Duration `yaml:"window"`             // 24h, whole hours, at most 168h
	MinVolume        int64         `yaml:"min_volume"`         // 500 sends in the window before a rate counts
	MaxBounceRate    float64       `yaml:"max_bounce_rate"`    // 0.05
	MaxComplaintRate float64       `yaml:"max_complaint_rate"` // 0.003
}

// Tracking configures open/click tracking.
type Tracking struct {
	Secret      string        `yaml:"secret"`       // "" → generated and stored in Redis once; "new,old,…": signs with the first, accepts all (rotation)
	BotWindow   time.Duration `yaml:"bot_window"`   // 3s: hits this soon after delivery are a gateway's prefetch; 0 disables the rule
	CNAMETarget string        `yaml:"cname_target"` // "" → the host of http.public_url; custom tracking domains must be a CNAME of it
	// MaxHitsPerIPPerMinute is how many opens and clicks one client
	// address (an IPv6 /64) may have recorded a minute, in this process;
	// over it the pixel and the redirect answer as always and nothing is
	// recorded. Only public addresses are limited unless
	// auth.lockout_private_addresses (no proxy in front). 0: no limit.
	MaxHitsPerIPPerMinute int `yaml:"max_hits_per_ip_per_minute"` // 600
}

// Secrets are the tracking secrets, the current first; none when
// tracking.secret is empty.
func (t Tracking) Secrets() [][]byte {
	var out [][]byte
	for _, s := range strings.Split(t.Secret, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, []byte(s))
		}
	}
	return out
}

// Webhooks configures the delivery of events to accounts' webhook endpoints.
type Webhooks struct {
	Workers          int           `yaml:"workers"`            // 4 concurrent attempts; 0 allowed (no webhook dispatch in this process)
	Timeout          time.Duration `yaml:"timeout"`            // 10s per attempt
	RetryInitial     time.Duration `yaml:"retry_initial"`      // 30s
	RetryMax         time.Duration `yaml:"retry_max"`          // 1h
	MaxAge           time.Duration `yaml:"max_age"`            // 72h of retries, then the delivery is given up
	ClaimIdle        time.Duration `yaml:"claim_idle"`         // 1m: events a dead dispatcher left are taken over after this
	AllowPrivateURLs bool          `yaml:"allow_private_urls"` // false; true lets endpoints be loopback/private (tests, development)
	AllowHTTP        bool          `yaml:"allow_http"`         // false: endpoints must be https://
}

// Domains configures sending-domain DNS records.
type Domains struct {
	DKIMSelector string `yaml:"dkim_selector"` // "pigeonpost"
	SPFInclude   string `yaml:"spf_include"`   // "" → Load sets "_spf." + smtp.hostname
}

// Attachments configures how the REST API fetches attachment paths (HTTPS
// URLs). Private, loopback and link-local addresses are always refused
// unless allow_private is set, which is for tests only.
type Attachments struct {
	AllowPrivate bool   `yaml:"allow_private"` // false; true lets paths reach loopback/private addresses (tests only)
	CAFile       string `yaml:"ca_file"`       // "" → system roots; else a PEM file of extra roots trusted for paths
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug|info|warn|error
	Format string `yaml:"format"` // text|json
}

const mib = 1 << 20

// Default returns the built-in defaults. SMTP.Hostname is os.Hostname() (or
// "localhost"); Domains.SPFInclude is left empty and filled by Load.
func Default() Config {
	return Config{
		Redis: Redis{MinReplicasTimeout: time.Second, Shards: 1},
		SMTP: SMTP{
			Listen:               ":587",
			TLSListen:            ":465",
			Hostname:             defaultHostname(),
			MaxMessageBytes:      25 * mib,
			MaxRecipients:        100,
			MaxLineBytes:         256 << 10,
			MaxConnections:       1000,
			MaxConnectionsPerIP:  100,
			ReadTimeout:          60 * time.Second,
			WriteTimeout:         60 * time.Second,
			DataTimeout:          10 * time.Minute,
			DataMemoryBytes:      256 * mib,
			DataMemoryPerAccount: 128 * mib,
			MaxSessionTime:       30 * time.Minute,
		},
		HTTP: HTTP{
			Listen:            ":8080",
			PublicURL:         "http://localhost:8080",
			MaxBodyBytes:      35 * mib,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       5 * time.Minute,
		},
		Delivery: Delivery{
			MXPort:       25,
			Workers:      8,
			Timeout:      2 * time.Minute,
			RetryInitial: time.Minute,
			RetryMax:     time.Hour,
			MaxAge:       72 * time.Hour,
			ClaimIdle:    5 * time.Minute,
			BacklogLimit: 50000,
			InFlowDelay:  time.Second,

			MaxConnectionsPerDestination: 10,
			SuspendMin:                   time.Minute,
			SuspendMax:                   30 * time.Minute,
		},
		Auth: Auth{
			FailureDelay: time.Second,
		},
		Limits: Limits{
			RatePerSecond: 100,
			Burst:         200,
		},
		Reputation: Reputation{
			AutoPause:        true,
			Window:           24 * time.Hour,
			MinVolume:        500,
			MaxBounceRate:    0.05,
			MaxComplaintRate: 0.003,
		},
		Retention: Retention{
			Content: 7 * 24 * time.Hour,
			Records: 30 * 24 * time.Hour,
		},
		Tracking: Tracking{
			BotWindow:             3 * time.Second,
			MaxHitsPerIPPerMinute: 600,
		},
		Webhooks: Webhooks{
			Workers:      4,
			Timeout:      10 * time.Second,
			RetryInitial: 30 * time.Second,
			RetryMax:     time.Hour,
			MaxAge:       72 * time.Hour,
			ClaimIdle:    time.Minute,
		},
		Domains: Domains{
			DKIMSelector: "pigeonpost",
		},
		Log: Log{
			Level:  "info",
			Format: "text",
		},
	}
}

func defaultHostname() string {
	h, err := os.Hostname()
	if err != nil || strings.TrimSpace(h) == "" {
		return "localhost"
	}
	return h
}

// Load builds the configuration: Default(), then the YAML file at path (if
// path != ""), then PIGEONPOST_<SECTION>_<KEY> environment variables read
// through getenv (os.Getenv if nil; an empty value counts as unset), then
// derived values (an empty smtp.hostname becomes the default hostname, an
// empty domains.spf_include becomes "_spf." + smtp.hostname, a trailing
// slash is trimmed from http.public_url), then Validate.
//
// Every error is a single line. Unknown, duplicate or empty YAML keys and
// values of the wrong type are named by their dotted key; environment parse
// errors are named by their variable; validation errors wrap a
// *ValidationError.
func Load(path string, getenv func(string) string) (Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	c := Default()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return Config{}, fmt.Errorf("config: %s", oneLine(err.Error()))
		}
		if err := decodeYAML(data, &c); err != nil {
			return Config{}, fmt.Errorf("config: %s: %s", path, oneLine(err.Error()))
		}
	}
	if err := applyEnv(&c, getenv); err != nil {
		return Config{}, fmt.Errorf("config: environment: %w", err)
	}
	c.fillDerived()
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return c, nil
}

func (c *Config) fillDerived() {
	if strings.TrimSpace(c.SMTP.Hostname) == "" {
		c.SMTP.Hostname = defaultHostname()
	}
	if c.SMTP.ReportsMailbox == "" {
		c.SMTP.ReportsMailbox = "reports@" + c.SMTP.Hostname
	}
	if c.Domains.SPFInclude == "" {
		c.Domains.SPFInclude = "_spf." + c.SMTP.Hostname
	}
	if u := strings.TrimRight(c.HTTP.PublicURL, "/"); u != "" && !strings.HasSuffix(u, ":") {
		c.HTTP.PublicURL = u
	}
}

// decodeYAML applies one YAML document to c. A lint pass over the parsed
// node tree first reports every unknown, duplicate or empty key and every
// badly typed value by its dotted key; the values are then applied by a
// yaml.v3 Decoder with KnownFields(true).
func decodeYAML(data []byte, c *Config) error {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // empty file: nothing to override
		}
		return flattenYAMLError(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return flattenYAMLError(err)
		}
		return fmt.Errorf("line %d: a second YAML document (---) is not allowed", extra.Line)
	}
	if problems := lintYAML(&doc); len(problems) > 0 {
		return &ValidationError{Problems: problems}
	}

	dec = yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return flattenYAMLError(err)
	}
	return nil
}

// ValidationError lists every problem found, each prefixed by its key. Its
// Error joins them with "; " on one line.
type ValidationError struct {
	Problems []string
}

func (e *ValidationError) Error() string {
	return strings.Join(e.Problems, "; ")
}

// oneLine collapses line breaks so that every error stays on one line.
func oneLine(s string) string {
	var parts []string
	for _, line := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }) {
		if line = strings.TrimSpace(line); line != "" {
			parts = append(parts, line)
		}
	}
	return strings.Join(parts, " ")
}
