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
	"syscall"
	"time"
)

// ErrForbiddenAddress is returned for a destination on a private, loopback,
// link-local or otherwise non-public address.
var ErrForbiddenAddress = errors.New("destination address is not public")

// ErrTooLarge is returned when a body exceeds the cap.
var ErrTooLarge = errors.New("response body exceeds the size limit")

// Options configure a Client.
type Options struct {
	Timeout      time.Duration // whole request, body included
	MaxBytes     int64         // body cap for Fetch
	MaxRedirects int
	// AllowPrivate lets requests reach any address. Only for tests that
	// serve on loopback; never in production.
	AllowPrivate bool
	// HTTPSOnly refuses plain http:// URLs (attachment paths must be HTTPS).
	HTTPSOnly bool
	// Transport to clone settings from (e.g. a test CA for a local HTTPS
	// server); nil: http.DefaultTransport. Its dialer and proxy are replaced.
	Transport *http.Transport
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
		opt.MaxRedirects = 3
	}
	tr := opt.Transport
	if tr == nil {
		tr = http.DefaultTransport.(*http.Transport).Clone()
	}
	tr.Proxy = nil // a proxy would dial on our behalf, past the check
	dialer := &net.Dialer{Timeout: opt.Timeout, Resolver: opt.Resolver, Control: func(_, address string, _ syscall.RawConn) error {
		return checkAddress(address, opt.AllowPrivate)
	}}
	tr.DialContext = dialer.DialContext
	c := &Client{opt: opt}
	c.http = &http.Client{
		Transport: tr,
		Timeout:   opt.Timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= opt.MaxRedirects {
				return fmt.Errorf("more than %d redirects", opt.MaxRedirects)
			}
			return c.checkURL(req.URL)
		},
	}
	return c
}

// checkAddress is called for every connection, with the IP the dialer
// resolved: the one place where the SSRF rule is enforced.
func checkAddress(address string, allowPrivate bool) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("%w: %q", ErrForbiddenAddress, host)
	}
	if allowPrivate {
		return nil
	}
	if !Public(ip) {
		return fmt.Errorf("%w: %s", ErrForbiddenAddress, ip)
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

// checkURL refuses schemes other than http(s) and URLs with credentials.
func (c *Client) checkURL(u *url.URL) error {
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && !c.opt.HTTPSOnly:
	default:
		return fmt.Errorf("URL scheme %q is not allowed", u.Scheme)
	}
	if u.User != nil {
		return errors.New("URLs with credentials are not allowed")
	}
	if u.Hostname() == "" {
		return errors.New("URL has no host")
	}
	return nil
}

// Do sends req after checking its URL.
func (c *Client) Do(req *http.Request) (*http.Response, error) {
	if err := c.checkURL(req.URL); err != nil {
		return nil, err
	}
	return c.http.Do(req)
}

// Fetch GETs rawURL and returns its body, at most MaxBytes of it.
func (c *Client) Fetch(ctx context.Context, rawURL string) ([]byte, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, "", err
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
	if err != nil {
		return nil, "", err
	}
	if int64(len(body)) > limit {
		return nil, "", ErrTooLarge
	}
	return body, resp.Header.Get("Content-Type"), nil
}
