package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Validate checks every key and returns nil or a *ValidationError listing
// every problem, each prefixed by its key ("smtp.listen: missing port in
// address ..."), joined on one line with "; ".
//
// Validate reads the TLS certificate and key files' metadata (they must
// exist and be readable) but does not parse them.
func (c Config) Validate() error {
	v := &validator{}

	// smtp
	v.listen("smtp.listen", c.SMTP.Listen, true)
	v.listen("smtp.tls_listen", c.SMTP.TLSListen, false)
	v.listen("smtp.mailbox_listen", c.SMTP.MailboxListen, false)
	if local, domain, ok := strings.Cut(c.SMTP.ReportsMailbox, "@"); c.SMTP.ReportsMailbox != "" &&
		(!ok || local == "" || domain == "" || strings.ContainsAny(c.SMTP.ReportsMailbox, " \t\r\n<>")) {
		v.add("smtp.reports_mailbox", fmt.Sprintf("must be an address, local@domain (got %q)", c.SMTP.ReportsMailbox))
	}
	v.hostname("smtp.hostname", c.SMTP.Hostname)
	v.positive("smtp.max_message_bytes", c.SMTP.MaxMessageBytes)
	v.positive("smtp.max_recipients", int64(c.SMTP.MaxRecipients))
	if c.SMTP.MaxLineBytes < 1000 {
		v.add("smtp.max_line_bytes", fmt.Sprintf("must be at least 1000, the line RFC 5321 §4.5.3.1.6 requires (got %d)", c.SMTP.MaxLineBytes))
	}
	v.positive("smtp.max_connections", int64(c.SMTP.MaxConnections))
	if c.SMTP.MaxConnectionsPerIP < 0 {
		v.add("smtp.max_connections_per_ip", fmt.Sprintf("must be 0 (no cap) or more (got %d)", c.SMTP.MaxConnectionsPerIP))
	}
	v.timeout("smtp.read_timeout", c.SMTP.ReadTimeout)
	v.timeout("smtp.write_timeout", c.SMTP.WriteTimeout)
	v.timeout("smtp.data_timeout", c.SMTP.DataTimeout)
	v.positive("smtp.data_memory_bytes", c.SMTP.DataMemoryBytes)
	switch {
	case c.SMTP.DataMemoryPerAccount < 0:
		v.add("smtp.data_memory_per_account", fmt.Sprintf("must be 0 (no cap) or more (got %d)", c.SMTP.DataMemoryPerAccount))
	case c.SMTP.DataMemoryPerAccount > c.SMTP.DataMemoryBytes && c.SMTP.DataMemoryBytes > 0:
		v.add("smtp.data_memory_per_account", fmt.Sprintf("must be at most smtp.data_memory_bytes, %d (got %d)", c.SMTP.DataMemoryBytes, c.SMTP.DataMemoryPerAccount))
	}
	if c.SMTP.MaxSessionTime < 0 {
		v.add("smtp.max_session_time", fmt.Sprintf("must be 0 (no limit) or more (got %s)", c.SMTP.MaxSessionTime))
	}
	if c.SMTP.ProxyProtocol && len(c.SMTP.ProxyTrusted) == 0 {
		v.add("smtp.proxy_trusted", "required with smtp.proxy_protocol: the load balancers' addresses (CIDRs), the only sources allowed to send a PROXY header")
	}
	for _, p := range c.SMTP.ProxyTrusted {
		if _, err := ParsePrefix(p); err != nil {
			v.add("smtp.proxy_trusted", fmt.Sprintf("%q is not a CIDR (10.0.0.0/8) or an IP address", p))
		}
	}

	// tls
	switch {
	case c.TLS.CertFile != "" && c.TLS.KeyFile == "":
		v.add("tls.key_file", "required when tls.cert_file is set (set both, or neither for a self-signed certificate)")
	case c.TLS.CertFile == "" && c.TLS.KeyFile != "":
		v.add("tls.cert_file", "required when tls.key_file is set (set both, or neither for a self-signed certificate)")
	case c.TLS.CertFile != "":
		v.readableFile("tls.cert_file", c.TLS.CertFile)
		v.readableFile("tls.key_file", c.TLS.KeyFile)
	}

	// http
	v.listen("http.listen", c.HTTP.Listen, true)
	v.publicURL("http.public_url", c.HTTP.PublicURL)
	v.positive("http.max_body_bytes", c.HTTP.MaxBodyBytes)
	v.timeout("http.read_header_timeout", c.HTTP.ReadHeaderTimeout)
	v.timeout("http.read_timeout", c.HTTP.ReadTimeout)
	v.listen("http.admin_listen", c.HTTP.AdminListen, false)
	// The operator's API takes no key: whoever reaches it may lift a pause.
	if host, _, err := net.SplitHostPort(c.HTTP.AdminListen); err == nil && !loopbackHost(host) {
		v.add("http.admin_listen", fmt.Sprintf("must listen on loopback (127.0.0.1, ::1 or localhost): it serves the operator's API without a key; reach it through SSH or a sidecar (got %q)", c.HTTP.AdminListen))
	}

	// redis
	v.redis(c.Redis)

	// dns
	if c.DNS.Resolver != "" {
		v.hostPort("dns.resolver", c.DNS.Resolver)
	}

	// delivery
	if c.Delivery.RelayHost != "" {
		v.hostPort("delivery.relay_host", c.Delivery.RelayHost)
	}
	if c.Delivery.MXPort < 1 || c.Delivery.MXPort > 65535 {
		v.add("delivery.mx_port", fmt.Sprintf("must be between 1 and 65535 (got %d)", c.Delivery.MXPort))
	}
	if c.Delivery.Workers < 0 {
		v.add("delivery.workers", fmt.Sprintf("must be 0 or more (got %d)", c.Delivery.Workers))
	}
	if c.Delivery.BacklogLimit < 0 {
		v.add("delivery.backlog_limit", fmt.Sprintf("must be 0 (off) or more (got %d)", c.Delivery.BacklogLimit))
	}
	if c.Delivery.InFlowDelay < 0 || c.Delivery.InFlowDelay > time.Minute {
		v.add("delivery.in_flow_delay", fmt.Sprintf("must be between 0 and 1m (got %s)", c.Delivery.InFlowDelay))
	}
	if c.Delivery.MaxConnectionsPerDestination < 0 {
		v.add("delivery.max_connections_per_destination", fmt.Sprintf("must be 0 (no limit) or more (got %d)", c.Delivery.MaxConnectionsPerDestination))
	}
	if c.Delivery.MessagesPerMinutePerDestination < 0 {
		v.add("delivery.messages_per_minute_per_destination", fmt.Sprintf("must be 0 (no limit) or more (got %d)", c.Delivery.MessagesPerMinutePerDestination))
	}
	okMin := v.timeout("delivery.suspend_min", c.Delivery.SuspendMin)
	if v.timeout("delivery.suspend_max", c.Delivery.SuspendMax) && okMin && c.Delivery.SuspendMin > c.Delivery.SuspendMax {
		v.add("delivery.suspend_min", fmt.Sprintf("must not exceed delivery.suspend_max (%s > %s)", c.Delivery.SuspendMin, c.Delivery.SuspendMax))
	}
	if _, err := ParseDestinationGroups(c.Delivery.DestinationGroups); err != nil {
		v.add("delivery.destination_groups", err.Error())
	}
	v.timeout("delivery.timeout", c.Delivery.Timeout)
	okInitial := v.timeout("delivery.retry_initial", c.Delivery.RetryInitial)
	okMax := v.timeout("delivery.retry_max", c.Delivery.RetryMax)
	if okInitial && okMax && c.Delivery.RetryInitial > c.Delivery.RetryMax {
		v.add("delivery.retry_initial", fmt.Sprintf("must not exceed delivery.retry_max (%s > %s)",
			c.Delivery.RetryInitial, c.Delivery.RetryMax))
	}
	v.timeout("delivery.max_age", c.Delivery.MaxAge)
	if v.timeout("delivery.claim_idle", c.Delivery.ClaimIdle) && c.Delivery.Timeout > 0 &&
		c.Delivery.ClaimIdle <= c.Delivery.Timeout {
		v.add("delivery.claim_idle", fmt.Sprintf("must be longer than delivery.timeout (%s <= %s), or an attempt still in progress could be reclaimed and delivered twice",
			c.Delivery.ClaimIdle, c.Delivery.Timeout))
	}

	// auth
	if k := c.Auth.BootstrapKey; k != "" {
		// Never quote the key itself: errors end up in logs.
		switch {
		case !strings.HasPrefix(k, "sp_live_") && !strings.HasPrefix(k, "sp_test_"):
			v.add("auth.bootstrap_key", "must start with sp_live_ or sp_test_")
		case len(k) < 24:
			v.add("auth.bootstrap_key", fmt.Sprintf("must be at least 24 characters (got %d)", len(k)))
		case strings.IndexFunc(k, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
			v.add("auth.bootstrap_key", "must not contain spaces or control characters")
		}
	}
	if c.Auth.FailureDelay < 0 {
		v.add("auth.failure_delay", fmt.Sprintf("must be 0 (disabled) or more (got %s)", c.Auth.FailureDelay))
	}

	// limits
	if r := c.Limits.RatePerSecond; !(r > 0) || math.IsInf(r, 0) {
		v.add("limits.rate_per_second", fmt.Sprintf("must be greater than 0 (got %v)", r))
	}
	if c.Limits.MonthlyEmails < 0 {
		v.add("limits.monthly_emails", fmt.Sprintf("must be 0 (no limit) or more (got %d)", c.Limits.MonthlyEmails))
	}
	if c.Limits.Burst < 1 {
		v.add("limits.burst", fmt.Sprintf("must be at least 1 (got %d)", c.Limits.Burst))
	}

	// reputation
	if w := c.Reputation.Window; w < time.Hour || w > 168*time.Hour || w%time.Hour != 0 {
		v.add("reputation.window", fmt.Sprintf("must be whole hours from 1h to 168h (got %s)", w))
	}
	if c.Reputation.MinVolume < 1 {
		v.add("reputation.min_volume", fmt.Sprintf("must be at least 1 (got %d)", c.Reputation.MinVolume))
	}
	v.fraction("reputation.max_bounce_rate", c.Reputation.MaxBounceRate)
	v.fraction("reputation.max_complaint_rate", c.Reputation.MaxComplaintRate)

	// retention
	if c.Retention.Content < 0 {
		v.add("retention.content", fmt.Sprintf("must be 0 (keep forever) or more (got %s)", c.Retention.Content))
	}
	if c.Retention.Records < 0 {
		v.add("retention.records", fmt.Sprintf("must be 0 (keep forever) or more (got %s)", c.Retention.Records))
	}
	if c.Retention.Records > 0 && (c.Retention.Content == 0 || c.Retention.Content > c.Retention.Records) {
		v.add("retention.content", "must not outlive retention.records (the record says what the content is)")
	}

	// tracking
	if strings.TrimSpace(c.Tracking.Secret) != "" && len(c.Tracking.Secrets()) != len(strings.Split(c.Tracking.Secret, ",")) {
		v.add("tracking.secret", "an empty secret in the list: write \"current,older,...\"")
	}
	if c.Tracking.BotWindow < 0 {
		v.add("tracking.bot_window", fmt.Sprintf("must be 0 (disabled) or more (got %s)", c.Tracking.BotWindow))
	}
	v.dnsName("tracking.cname_target", c.Tracking.CNAMETarget, false)
	if c.Tracking.MaxHitsPerIPPerMinute < 0 {
		v.add("tracking.max_hits_per_ip_per_minute", fmt.Sprintf("must be 0 (no limit) or more (got %d)", c.Tracking.MaxHitsPerIPPerMinute))
	}

	// webhooks
	if c.Webhooks.Workers < 0 {
		v.add("webhooks.workers", fmt.Sprintf("must be 0 or more (got %d)", c.Webhooks.Workers))
	}
	v.timeout("webhooks.timeout", c.Webhooks.Timeout)
	okInitial = v.timeout("webhooks.retry_initial", c.Webhooks.RetryInitial)
	okMax = v.timeout("webhooks.retry_max", c.Webhooks.RetryMax)
	if okInitial && okMax && c.Webhooks.RetryInitial > c.Webhooks.RetryMax {
		v.add("webhooks.retry_initial", fmt.Sprintf("must not exceed webhooks.retry_max (%s > %s)",
			c.Webhooks.RetryInitial, c.Webhooks.RetryMax))
	}
	if v.timeout("webhooks.max_age", c.Webhooks.MaxAge) && okInitial && c.Webhooks.MaxAge < c.Webhooks.RetryInitial {
		v.add("webhooks.max_age", fmt.Sprintf("must not be shorter than webhooks.retry_initial (%s < %s)",
			c.Webhooks.MaxAge, c.Webhooks.RetryInitial))
	}
	v.timeout("webhooks.claim_idle", c.Webhooks.ClaimIdle)

	// domains
	v.dnsName("domains.dkim_selector", c.Domains.DKIMSelector, true)
	v.dnsName("domains.spf_include", c.Domains.SPFInclude, false)

	// log
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		v.add("log.level", fmt.Sprintf("must be one of debug, info, warn, error (got %q)", c.Log.Level))
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		v.add("log.format", fmt.Sprintf("must be text or json (got %q)", c.Log.Format))
	}

	// attachments
	if c.Attachments.CAFile != "" {
		v.readableFile("attachments.ca_file", c.Attachments.CAFile)
	}

	if len(v.problems) == 0 {
		return nil
	}
	return &ValidationError{Problems: v.problems}
}

type validator struct {
	problems []string
}

// fraction checks a rate: above 0, at most 1.
func (v *validator) fraction(key string, r float64) {
	if !(r > 0 && r <= 1) {
		v.add(key, fmt.Sprintf("must be a fraction greater than 0 and at most 1 (got %v)", r))
	}
}

func (v *validator) add(key, msg string) {
	v.problems = append(v.problems, key+": "+oneLine(msg))
}

func (v *validator) positive(key string, n int64) {
	if n <= 0 {
		v.add(key, fmt.Sprintf("must be greater than 0 (got %d)", n))
	}
}

func (v *validator) timeout(key string, d time.Duration) bool {
	if d <= 0 {
		v.add(key, fmt.Sprintf("must be greater than 0 (got %s)", d))
		return false
	}
	return true
}

// listen checks a listen address: host:port with an optional host and a
// numeric port 0..65535 (0 picks a free port).
func (v *validator) listen(key, addr string, required bool) {
	if addr == "" {
		if required {
			v.add(key, `required (host:port, e.g. ":587" or "127.0.0.1:587")`)
		}
		return
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.add(key, splitErr(err, addr))
		return
	}
	if msg := checkPort(port, 0); msg != "" {
		v.add(key, fmt.Sprintf("%s in address %q", msg, addr))
	}
}

// loopbackHost reports whether a listen host is loopback only.
func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// hostPort checks an address to dial: a non-empty host and a numeric port
// 1..65535.
func (v *validator) hostPort(key, addr string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.add(key, splitErr(err, addr))
		return
	}
	if host == "" {
		v.add(key, fmt.Sprintf("missing host in address %q", addr))
	}
	if msg := checkPort(port, 1); msg != "" {
		v.add(key, fmt.Sprintf("%s in address %q", msg, addr))
	}
}

func splitErr(err error, addr string) string {
	var ae *net.AddrError
	if errors.As(err, &ae) {
		return fmt.Sprintf("%s %q (want host:port)", ae.Err, addr)
	}
	return err.Error()
}

func checkPort(port string, min int) string {
	if port == "" {
		return "missing port number"
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < min || n > 65535 {
		return fmt.Sprintf("port must be a number from %d to 65535 (got %q)", min, port)
	}
	return ""
}

func (v *validator) hostname(key, h string) {
	switch {
	case strings.TrimSpace(h) == "":
		v.add(key, "required")
	case strings.IndexFunc(h, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		v.add(key, fmt.Sprintf("must not contain spaces or control characters (got %q)", h))
	}
}

// dnsName checks a name made of dot-separated labels of letters, digits,
// hyphens and underscores.
func (v *validator) dnsName(key, name string, required bool) {
	if name == "" {
		if required {
			v.add(key, "required")
		}
		return
	}
	if len(name) > 253 {
		v.add(key, "must be at most 253 characters")
		return
	}
	for _, label := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			v.add(key, fmt.Sprintf("not a valid DNS name (got %q)", name))
			return
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				v.add(key, fmt.Sprintf("not a valid DNS name (got %q)", name))
				return
			}
		}
	}
}

func (v *validator) readableFile(key, path string) {
	f, err := os.Open(path)
	if err != nil {
		v.add(key, err.Error())
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		v.add(key, err.Error())
		return
	}
	if fi.IsDir() {
		v.add(key, fmt.Sprintf("%s is a directory, not a file", path))
	}
}

func (v *validator) publicURL(key, s string) {
	if s == "" {
		v.add(key, "required (absolute http:// or https:// URL)")
		return
	}
	u, err := url.Parse(s)
	if err != nil {
		v.add(key, fmt.Sprintf("invalid URL %q: %s", s, urlErr(err)))
		return
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Opaque != "" {
		v.add(key, fmt.Sprintf("must be an absolute http:// or https:// URL (got %q)", s))
		return
	}
	if u.Host == "" || u.Hostname() == "" {
		v.add(key, fmt.Sprintf("missing host (got %q)", s))
	}
	if u.Port() != "" {
		if msg := checkPort(u.Port(), 1); msg != "" {
			v.add(key, fmt.Sprintf("%s (got %q)", msg, s))
		}
	}
	if u.User != nil {
		v.add(key, "must not contain a user name or password")
	}
	if u.RawQuery != "" || u.ForceQuery {
		v.add(key, fmt.Sprintf("must not have a query (got %q)", s))
	}
	if u.Fragment != "" || strings.Contains(s, "#") {
		v.add(key, fmt.Sprintf("must not have a fragment (got %q)", s))
	}
}

// redis checks the redis section: one way to name the servers, and a
// topology (one server, cluster, Sentinel) that fits it.
func (v *validator) redis(r Redis) {
	v.redisURL("redis.url", r.URL)
	clusterURL := strings.HasSuffix(schemeOf(r.URL), "+cluster")
	if r.URL != "" && len(r.Addrs) > 0 {
		v.add("redis.addrs", "set redis.url or redis.addrs, not both")
	}
	for _, a := range r.Addrs {
		v.hostPort("redis.addrs", a)
	}
	switch {
	case r.SentinelMaster != "" && (r.Cluster || clusterURL):
		v.add("redis.sentinel_master", "cannot be combined with a cluster (redis.cluster or a redis+cluster:// URL)")
	case r.SentinelMaster != "" && len(r.Addrs) == 0:
		v.add("redis.addrs", "required with redis.sentinel_master: the Sentinels' host:port")
	case r.Cluster && r.URL == "" && len(r.Addrs) == 0:
		v.add("redis.cluster", "needs the nodes in redis.addrs (or a redis+cluster:// redis.url)")
	case r.Cluster && schemeOf(r.URL) == "unix":
		v.add("redis.cluster", "a cluster is reached over TCP, not a unix socket")
	case len(r.Addrs) > 1 && !r.Cluster && r.SentinelMaster == "":
		v.add("redis.addrs", "several addresses need redis.cluster: true or redis.sentinel_master")
	}
	if r.Password != "" && r.URL != "" {
		v.add("redis.password", "goes with redis.addrs; put it in redis.url instead")
	}
	if r.Shards < 1 || r.Shards > maxShards {
		v.add("redis.shards", fmt.Sprintf("must be 1 to %d (got %d)", maxShards, r.Shards))
	}
	if r.MinReplicasAcked < 0 {
		v.add("redis.min_replicas_acked", fmt.Sprintf("must be 0 (off) or more (got %d)", r.MinReplicasAcked))
	}
	if r.MinReplicasAcked > 0 {
		if r.URL == "" && len(r.Addrs) == 0 {
			v.add("redis.min_replicas_acked", "needs a Redis with replicas; the embedded one has none")
		}
		v.timeout("redis.min_replicas_timeout", r.MinReplicasTimeout)
	}
}

// maxShards is store.MaxShards (config imports nothing of pigeonpost's).
const maxShards = 16

// schemeOf returns the scheme of a URL, lower case, or "".
func schemeOf(s string) string {
	scheme, _, ok := strings.Cut(s, "://")
	if !ok {
		return ""
	}
	return strings.ToLower(scheme)
}

// redisURL checks redis.url. The value may hold a password, so messages
// never quote it.
func (v *validator) redisURL(key, s string) {
	if s == "" {
		return // embedded in-memory server
	}
	u, err := url.Parse(s)
	if err != nil {
		v.add(key, "invalid URL: "+urlErr(err))
		return
	}
	switch u.Scheme {
	case "redis+cluster", "rediss+cluster":
		if u.Host == "" {
			v.add(key, "missing nodes (want redis+cluster://[user:password@]host:port[,host:port…])")
		}
		for _, a := range strings.Split(u.Host, ",") {
			if u.Host != "" {
				v.hostPort(key, a)
			}
		}
		if p := strings.Trim(u.Path, "/"); p != "" && p != "0" {
			v.add(key, "a cluster has only database 0")
		}
	case "redis", "rediss":
		if u.Hostname() == "" {
			v.add(key, "missing host (want redis://[user:password@]host[:port][/db])")
		}
		if p := u.Port(); p != "" {
			if msg := checkPort(p, 1); msg != "" {
				v.add(key, msg)
			}
		}
		if db := strings.TrimPrefix(u.Path, "/"); db != "" {
			if n, err := strconv.Atoi(db); err != nil || n < 0 {
				v.add(key, fmt.Sprintf("database must be a number after the host, as in redis://host:6379/0 (got %q)", db))
			}
		}
	case "unix":
		if u.Path == "" {
			v.add(key, "missing socket path (want unix:///path/to/redis.sock)")
		}
	case "":
		v.add(key, "missing scheme (want redis://, rediss://, unix:// or redis+cluster://)")
	default:
		v.add(key, fmt.Sprintf("scheme must be redis, rediss, unix, redis+cluster or rediss+cluster (got %q)", u.Scheme))
	}
}

// urlErr returns a url.Parse error without the URL it was given.
func urlErr(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// DestinationGroup is a provider whose MX hosts count as one destination
// (delivery.destination_groups).
type DestinationGroup struct {
	Name     string
	Suffixes []string
}

// ParseDestinationGroups reads delivery.destination_groups:
// "name=.suffix,.suffix;name=.suffix". It returns nil for "" (the
// built-in list applies) and an empty list for "-" (no groups).
func ParseDestinationGroups(s string) ([]DestinationGroup, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "":
		return nil, nil
	case "-":
		return []DestinationGroup{}, nil
	}
	out := []DestinationGroup{}
	for _, part := range strings.Split(s, ";") {
		name, list, ok := strings.Cut(strings.TrimSpace(part), "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.ContainsAny(name, " {}") {
			return nil, fmt.Errorf(`want "name=.suffix,.suffix;name=..." (got a group %q)`, part)
		}
		g := DestinationGroup{Name: strings.ToLower(name)}
		for _, suffix := range strings.Split(list, ",") {
			suffix = strings.ToLower(strings.TrimSpace(suffix))
			if suffix == "" || suffix == "." || strings.ContainsAny(suffix, " {}") {
				return nil, fmt.Errorf("group %s: a host name suffix is empty or has a space or brace", name)
			}
			g.Suffixes = append(g.Suffixes, suffix)
		}
		out = append(out, g)
	}
	return out, nil
}

// ParsePrefix reads an smtp.proxy_trusted entry: a CIDR, or one address
// (its /32 or /128).
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}
