package webhooks

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"

	"github.com/pigeonpost/pigeonpost/internal/safehttp"
)

// URLPolicy says which endpoint URLs are accepted.
type URLPolicy struct {
	// AllowPrivate accepts loopback, private and link-local destinations.
	// For tests and local development only.
	AllowPrivate bool
	// AllowHTTP accepts plain http:// URLs; otherwise only https://.
	AllowHTTP bool
	// Allow decides which addresses are acceptable, in place of
	// safehttp.Public (tests: one loopback address and not another); the
	// dispatcher's safehttp.Options.Allow must say the same.
	Allow func(netip.Addr) bool
}

// allowed reports whether ip is an acceptable destination.
func (p URLPolicy) allowed(ip netip.Addr) bool {
	if p.Allow != nil {
		return p.Allow(ip)
	}
	return safehttp.Public(ip)
}

// maxURLLen bounds endpoint URLs.
const maxURLLen = 2048

// CheckURL checks an endpoint URL at registration: http(s) as the policy
// allows, no credentials, a host, and, unless AllowPrivate, every address
// the host resolves to (through lookup) public. The same rule is enforced
// again at every delivery, on the address actually dialled (safehttp), so a
// name that later resolves elsewhere (DNS rebinding) is still refused. The
// error is a client-safe message.
func CheckURL(ctx context.Context, raw string, p URLPolicy, lookup func(ctx context.Context, host string) ([]string, error)) error {
	if raw == "" {
		return errors.New("a URL is required")
	}
	if len(raw) > maxURLLen || strings.ContainsAny(raw, " \t\r\n") {
		return errors.New("not a valid URL")
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Opaque != "" {
		return errors.New("not a valid absolute URL")
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && p.AllowHTTP:
	case u.Scheme == "http":
		return errors.New("must be an https:// URL")
	default:
		return fmt.Errorf("scheme %q is not allowed; use https://", u.Scheme)
	}
	if u.User != nil {
		return errors.New("must not contain a user name or password")
	}
	host := u.Hostname()
	if host == "" {
		return errors.New("has no host")
	}
	if safehttp.CheckHost(host) != nil {
		return fmt.Errorf("host %q is a number but not an IP address written in full", host)
	}
	if p.AllowPrivate {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if !p.allowed(ip) {
			return errors.New("points at a private, loopback or link-local address")
		}
		return nil
	}
	if safehttp.IsLocalhost(host) {
		return errors.New("points at a private, loopback or link-local address")
	}
	if lookup == nil {
		return nil // checked at delivery only
	}
	addrs, err := lookup(ctx, host)
	if err != nil || len(addrs) == 0 {
		return fmt.Errorf("host %q does not resolve", host)
	}
	for _, a := range addrs {
		ip, err := netip.ParseAddr(a)
		if err != nil || !p.allowed(ip) {
			return errors.New("points at a private, loopback or link-local address")
		}
	}
	return nil
}
