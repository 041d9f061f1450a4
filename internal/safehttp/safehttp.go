// Package safehttp makes outbound HTTP requests to URLs that users supply
// (attachment paths, webhook endpoints) without letting them reach the
// inside: every address a connection is about to use, after DNS and after
// each redirect, is checked at dial time (so DNS rebinding cannot slip
// through), and bodies are read with a size cap and a deadline. The rules
// are those of the OWASP SSRF Prevention Cheat Sheet,
// https://cheatsheetseries.owasp.org/cheatsheets/Server_Side_Request_Forgery_Prevention_Cheat_Sheet.html
package safehttp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// ErrForbiddenAddress is returned for a destination on a private, loopback,
// link-local or otherwise non-public address.
var ErrForbiddenAddress = errors.New("destination address is not public")

// ErrRefusedURL is returned, wrapped with the reason, for a URL that is not
// fetched at all: a scheme other than http(s) (https only with HTTPSOnly),
// credentials, no host, or a host written as a number in a form other than
// a dotted quad (127.1, 2130706433, 0x7f.0.0.1, 017700000001), which
// browsers and some resolvers read as an IPv4 address and Go as a name.
// The reason is safe to show to whoever gave the URL.
var ErrRefusedURL = errors.New("URL refused")

// ErrTooManyRedirects is returned when a response redirects more than
// MaxRedirects times.
var ErrTooManyRedirects = errors.New("too many redirects")

// ErrTimeout is returned when the request, body included, did not finish
// within Timeout (or the context's deadline).
var ErrTimeout = errors.New("request timed out")

// ErrTooLarge is returned when a body exceeds the cap.
var ErrTooLarge = errors.New("response body exceeds the size limit")

// DefaultMaxRedirects is how many redirects a request follows when
// Options.MaxRedirects is 0.
const DefaultMaxRedirects = 3

// Options configure a Client.
type Options struct {
	Timeout      time.Duration // whole request, body included
	MaxBytes     int64         // body cap for Fetch, on the decoded body
	MaxRedirects int           // 0: DefaultMaxRedirects
	// AllowPrivate lets requests reach any address. Only for tests that
	// serve on loopback; never in production.
	AllowPrivate bool
	// Allow decides which addresses may be connected to, in place of
	// Public (tests: one loopback address but not another). AllowPrivate
	// overrides it.
	Allow func(netip.Addr) bool
	// HTTPSOnly refuses plain http:// URLs (attachment paths must be HTTPS).
	HTTPSOnly bool
	// Transport to clone settings from (e.g. a test CA for a local HTTPS
	// server); nil: http.DefaultTransport. Its dialers and proxy are replaced.
	Transport *http.Transport
	// Dialer to copy settings from; nil: a zero net.Dialer. Its Control (or
	// ControlContext) runs after the guard has accepted an address, just
	// before the connection is made: tests put a fence there that refuses
	// whatever is not loopback, so that a broken guard fails the test
	// without a packet leaving the machine.
	Dialer *net.Dialer
	// Resolver looks up the hosts of URLs (pigeonpost's dns.resolver); nil:
	// the system's. Whatever it answers, the address is checked at dial.
	Resolver *net.Resolver
}

// Client is an http.Client whose dialer refuses non-public addresses.
type Client struct {
	opt  Options
	http *http.Client
}

// New returns a Client.
func New(opt Options) *Client {
	if opt.Timeout == 0 {
		opt.Timeout = 10 * time.Second
	}
	if opt.MaxRedirects == 0 {
		opt.MaxRedirects = DefaultMaxRedirects
	}
	tr := opt.Transport
	if tr == nil {
		tr = http.DefaultTransport.(*http.Transport).Clone()
	} else {
		tr = tr.Clone()
	}
	tr.Proxy = nil // a proxy would dial on our behalf, past the check
	c := &Client{opt: opt}
	var dialer net.Dialer
	if opt.Dialer != nil {
		dialer = *opt.Dialer
	}
	next := dialer.ControlContext
	if next == nil && dialer.Control != nil {
		control := dialer.Control
		next = func(_ context.Context, network, address string, rc syscall.RawConn) error {
			return control(network, address, rc)
		}
	}
	dialer.Control = nil
	dialer.ControlContext = func(ctx context.Context, network, address string, rc syscall.RawConn) error {
		if err := c.checkAddress(address); err != nil {
			return err
		}
		if next != nil {
			return next(ctx, network, address, rc)
		}
		return nil
	}
	if dialer.Timeout == 0 {
		dialer.Timeout = opt.Timeout
	}
	dialer.Resolver = opt.Resolver
	// Every connection goes through this dialer, TLS ones included (the
	// transport does the handshake over it).
	// (DialContext takes priority over Dial; the TLS dialers are cleared.)
	tr.DialContext = dialer.DialContext
	tr.DialTLSContext = nil
	//lint:ignore SA1019 a deprecated dialer left set would bypass the guard
	tr.DialTLS = nil
	c.http = &http.Client{
		Transport: tr,
		Timeout:   opt.Timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > opt.MaxRedirects {
				return fmt.Errorf("%w: more than %d", ErrTooManyRedirects, opt.MaxRedirects)
			}
			return c.checkURL(req.URL)
		},
	}
	return c
}

// allowed reports whether ip may be connected to.
func (c *Client) allowed(ip netip.Addr) bool {
	switch {
	case c.opt.AllowPrivate:
		return true
	case c.opt.Allow != nil:
		return c.opt.Allow(ip)
	}
	return Public(ip)
}

// checkAddress is called for every connection, with the IP the dialer
// resolved, after DNS and before connect: the one place where the SSRF
// rule is enforced (checkURL refuses address literals earlier only to fail
// fast and clearly).
func (c *Client) checkAddress(address string) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %q", ErrForbiddenAddress, address)
	}
	if !c.allowed(ap.Addr()) {
		return fmt.Errorf("%w: %s", ErrForbiddenAddress, ap.Addr())
	}
	return nil
}

// Public reports whether ip is a global unicast address outside the private,
// shared, loopback, link-local and documentation ranges. IPv4-mapped IPv6
// addresses are judged as the IPv4 address they carry.
func Public(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsGlobalUnicast() || ip.IsPrivate() || ip.IsLoopback() || ip.IsLinkLocalUnicast() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"), // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
	// IPv6 forms that carry an IPv4 address a router may deliver to, a
	// private one as well: NAT64 (well-known and local-use prefixes),
	// IPv4-compatible (deprecated), 6to4, Teredo.
	netip.MustParsePrefix("64:ff9b::/96"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("::/96"),
	netip.MustParsePrefix("2002::/16"),
	netip.MustParsePrefix("2001::/32"),
	netip.MustParsePrefix("2001:db8::/32"),
}

// checkURL refuses schemes other than http(s), URLs with credentials or
// without a host, hosts written as numbers other than dotted quads, and
// address literals and localhost names the policy does not allow (these
// would be refused at dial; refusing them here makes no socket at all).
func (c *Client) checkURL(u *url.URL) error {
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && !c.opt.HTTPSOnly:
	case u.Scheme == "http":
		return fmt.Errorf("%w: the URL must be https://", ErrRefusedURL)
	default:
		return fmt.Errorf("%w: scheme %q is not allowed", ErrRefusedURL, u.Scheme)
	}
	if u.User != nil {
		return fmt.Errorf("%w: URLs with credentials are not allowed", ErrRefusedURL)
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("%w: the URL has no host", ErrRefusedURL)
	}
	if err := CheckHost(host); err != nil {
		return err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil && IsLocalhost(host) {
		ip = netip.AddrFrom4([4]byte{127, 0, 0, 1}) // RFC 6761: always loopback
	} else if err != nil {
		return nil // a name: checked at dial, on each address it resolves to
	}
	if !c.allowed(ip) {
		return fmt.Errorf("%w: %s", ErrForbiddenAddress, host)
	}
	return nil
}

// CheckHost refuses a URL host that ends in a number (the WHATWG URL
// standard's test for an IPv4 host) but is not an IP address as
// netip.ParseAddr reads it: 127.1, 2130706433, 0x7f.0.0.1, 017700000001
// and 0127.0.0.1 are loopback to a browser or to inet_aton, a name to Go's
// resolver. No public name ends in a number (top-level domains are
// alphabetic), so refusing them costs nothing and leaves one reading.
func CheckHost(host string) error {
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	labels := strings.Split(strings.TrimSuffix(host, "."), ".")
	last := labels[len(labels)-1]
	hex, isHex := strings.CutPrefix(strings.ToLower(last), "0x")
	if last != "" && (allIn(last, "0123456789") || isHex && allIn(hex, "0123456789abcdef")) {
		return fmt.Errorf("%w: host %q is a number but not an IP address written in full", ErrRefusedURL, host)
	}
	return nil
}

func allIn(s, chars string) bool {
	for _, r := range s {
		if !strings.ContainsRune(chars, r) {
			return false
		}
	}
	return true
}

// IsLocalhost reports whether host is localhost or a name under
// .localhost, which RFC 6761 reserves for loopback.
func IsLocalhost(host string) bool {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	return h == "localhost" || strings.HasSuffix(h, ".localhost")
}

// Do sends req after checking its URL.
func (c *Client) Do(req *http.Request) (*http.Response, error) {
	if err := c.checkURL(req.URL); err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, timeout(err)
	}
	return resp, nil
}

// Fetch GETs rawURL and returns its body, at most MaxBytes of it. The cap
// applies to the body as decoded: the transport asks for gzip and inflates
// it transparently, and the limit is on what comes out, so a small
// compressed body that inflates past the cap is cut at the cap.
//
// The whole fetch is bounded by Timeout (and ctx). A body cut short by
// either is an ErrTimeout, never a shorter file: net/http sometimes ends
// the body of a cancelled request with io.EOF instead of an error (seen
// under the race detector in TestFetchBounded), so the deadline is checked
// once the body is read.
func (c *Client) Fetch(ctx context.Context, rawURL string) ([]byte, string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opt.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, "", fmt.Errorf("%w: not a valid URL", ErrRefusedURL)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("GET %s: status %d", req.URL.Redacted(), resp.StatusCode)
	}
	if c.opt.MaxBytes > 0 && resp.ContentLength > c.opt.MaxBytes {
		return nil, "", ErrTooLarge
	}
	limit := c.opt.MaxBytes
	if limit <= 0 {
		limit = 1 << 62
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err == nil && ctx.Err() != nil {
		err = context.Cause(ctx)
	}
	if err != nil {
		return nil, "", timeout(err)
	}
	if int64(len(body)) > limit {
		return nil, "", ErrTooLarge
	}
	return body, resp.Header.Get("Content-Type"), nil
}

// timeout marks err with ErrTimeout when it is one: the client's Timeout
// (while connecting, awaiting headers or reading the body) or the
// context's deadline.
func timeout(err error) error {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	return err
}
