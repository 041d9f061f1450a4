package deliver

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Resolver looks up MX records. Addr is "host:port" of the DNS server to ask;
// empty means the system resolver (net.DefaultResolver).
//
// With Addr set, queries go to that server only (UDP with recursion desired,
// retried over TCP when the answer is truncated); the system resolver is
// never used. Timeout bounds each query; zero means 5 seconds.
//
// Errors are *Error: NXDOMAIN and other "this will never work" answers are
// permanent, SERVFAIL, timeouts and network errors are temporary {4,4,3}.
type Resolver struct {
	Addr    string
	Timeout time.Duration
}

const defaultDNSTimeout = 5 * time.Second

// NetResolver returns a net.Resolver that asks r's server, for the clients
// that dial by name through the standard library (webhooks, attachment
// URLs); nil when r uses the system resolver.
func (r *Resolver) NetResolver() *net.Resolver {
	if r == nil || r.Addr == "" {
		return nil
	}
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		d := net.Dialer{Timeout: r.timeout()}
		return d.DialContext(ctx, network, r.Addr)
	}}
}

// maxCNAMEChain bounds how many CNAMEs of an answer are followed.
const maxCNAMEChain = 8

// LookupMX returns target hosts (no trailing dot) in preference order; equal
// preferences are sorted by name so the result is deterministic.
//
// RFC 5321 §5.1: no MX but an A/AAAA record → implicit MX (the domain
// itself). Null MX (RFC 7505: one MX "." pref 0) → permanent *Error {5,1,10}.
// NXDOMAIN (or a domain with neither MX nor address records) → permanent
// {5,1,2}. SERVFAIL, timeout, network error → temporary {4,4,3}.
func (r *Resolver) LookupMX(ctx context.Context, domain string) ([]string, error) {
	name, err := normalizeName(domain)
	if err != nil {
		return nil, err
	}
	if r.Addr == "" {
		return r.systemMX(ctx, name)
	}
	msg, err := r.query(ctx, name, dns.TypeMX)
	if err != nil {
		return nil, err
	}
	var records []*net.MX
	for _, rr := range answers(msg, name, dns.TypeMX) {
		mx := rr.(*dns.MX)
		records = append(records, &net.MX{Host: mx.Mx, Pref: mx.Preference})
	}
	return r.mxHosts(ctx, name, records)
}

// mxHosts turns an MX RRset into the delivery host list, handling null MX and
// implicit MX.
func (r *Resolver) mxHosts(ctx context.Context, name string, records []*net.MX) ([]string, error) {
	if len(records) == 0 {
		// Implicit MX: deliverable only if the domain has an address.
		if _, err := r.LookupHost(ctx, name); err != nil {
			return nil, err
		}
		return []string{name}, nil
	}
	type mx struct {
		host string
		pref uint16
	}
	var list []mx
	for _, rec := range records {
		host := strings.ToLower(strings.TrimSuffix(rec.Host, "."))
		if host == "" {
			// RFC 7505 null MX. A domain publishing it together with
			// real MX records is misconfigured; use the real ones.
			continue
		}
		list = append(list, mx{host, rec.Pref})
	}
	if len(list) == 0 {
		return nil, &Error{Enhanced: enhNullMX, Message: name + " does not accept mail (null MX)"}
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].pref != list[j].pref {
			return list[i].pref < list[j].pref
		}
		return list[i].host < list[j].host
	})
	hosts := make([]string, 0, len(list))
	seen := make(map[string]bool, len(list))
	for _, m := range list {
		if !seen[m.host] {
			seen[m.host] = true
			hosts = append(hosts, m.host)
		}
	}
	return hosts, nil
}

// LookupTXT returns the TXT records of name (each record's strings joined),
// for domain verification. A name without TXT records gives an empty result
// and no error; NXDOMAIN is a permanent *Error {5,1,2}, failures are
// temporary {4,4,3}.
func (r *Resolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	qname, err := normalizeName(name)
	if err != nil {
		return nil, err
	}
	if r.Addr == "" {
		txts, err := net.DefaultResolver.LookupTXT(ctx, qname)
		if err != nil {
			var de *net.DNSError
			if errors.As(err, &de) && de.IsNotFound {
				// The system resolver does not tell NXDOMAIN from NODATA.
				return nil, nil
			}
			return nil, dnsTempError(qname, err)
		}
		return txts, nil
	}
	msg, err := r.query(ctx, qname, dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, rr := range answers(msg, qname, dns.TypeTXT) {
		var b strings.Builder
		for _, s := range rr.(*dns.TXT).Txt {
			b.WriteString(unescapeTXT(s))
		}
		out = append(out, b.String())
	}
	return out, nil
}

// LookupHost returns the IP addresses of host, IPv4 first. An IP literal
// (optionally in brackets) is returned as is. With Addr set the A and AAAA
// records are asked of that server; otherwise the system resolver is used.
// A name without addresses is a permanent *Error {5,1,2}.
func (r *Resolver) LookupHost(ctx context.Context, host string) ([]string, error) {
	if ip, ok := parseIPLiteral(host); ok {
		return []string{ip.String()}, nil
	}
	name, err := normalizeName(host)
	if err != nil {
		return nil, err
	}
	if r.Addr == "" {
		addrs, err := net.DefaultResolver.LookupHost(ctx, name)
		if err != nil {
			var de *net.DNSError
			if errors.As(err, &de) && de.IsNotFound {
				return nil, &Error{Enhanced: enhBadDomain, Message: name + " has no address", Err: err}
			}
			return nil, dnsTempError(name, err)
		}
		return addrs, nil
	}

	var addrs []string
	var firstErr error
	for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
		msg, err := r.query(ctx, name, qtype)
		if err != nil {
			var de *Error
			if errors.As(err, &de) && !de.Temporary {
				// NXDOMAIN: the other type cannot exist either.
				return nil, err
			}
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		for _, rr := range answers(msg, name, qtype) {
			switch a := rr.(type) {
			case *dns.A:
				addrs = append(addrs, a.A.String())
			case *dns.AAAA:
				addrs = append(addrs, a.AAAA.String())
			}
		}
	}
	if len(addrs) > 0 {
		return addrs, nil
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return nil, &Error{Enhanced: enhBadDomain, Message: name + " has no address"}
}

// systemMX is LookupMX through net.DefaultResolver.
func (r *Resolver) systemMX(ctx context.Context, name string) ([]string, error) {
	records, err := net.DefaultResolver.LookupMX(ctx, name)
	if err != nil {
		var de *net.DNSError
		if !errors.As(err, &de) || !de.IsNotFound {
			return nil, dnsTempError(name, err)
		}
		// NXDOMAIN or no MX records (the system resolver does not say
		// which): fall through to the implicit MX, whose address lookup
		// tells whether the domain exists.
		records = nil
	}
	return r.mxHosts(ctx, name, records)
}

func (r *Resolver) timeout() time.Duration {
	if r.Timeout <= 0 {
		return defaultDNSTimeout
	}
	return r.Timeout
}

// query sends one question to r.Addr and returns a NOERROR answer; anything
// else is an *Error.
func (r *Resolver) query(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	timeout := r.timeout()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = true
	m.SetEdns0(1232, false)

	resp, err := r.exchange(ctx, "udp", m, timeout)
	if err == nil && resp.Truncated {
		resp, err = r.exchange(ctx, "tcp", m, timeout)
	}
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, dnsTempError(name, err)
	}
	switch resp.Rcode {
	case dns.RcodeSuccess:
		return resp, nil
	case dns.RcodeNameError:
		return nil, &Error{Enhanced: enhBadDomain, Message: name + " does not exist (NXDOMAIN)"}
	default:
		return nil, &Error{
			Temporary: true,
			Enhanced:  enhDNSTemp,
			Message:   "DNS lookup of " + name + " failed: " + dns.RcodeToString[resp.Rcode],
		}
	}
}

// exchange sends m over network and reads the answer. miekg/dns only turns
// a context deadline into socket deadlines; closing the socket on
// cancellation makes a cancelled context return at once.
func (r *Resolver) exchange(ctx context.Context, network string, m *dns.Msg, timeout time.Duration) (*dns.Msg, error) {
	c := &dns.Client{Net: network, Timeout: timeout}
	co, err := c.DialContext(ctx, r.Addr)
	if err != nil {
		return nil, err
	}
	defer co.Close()
	stop := context.AfterFunc(ctx, func() { co.Close() })
	defer stop()
	resp, _, err := c.ExchangeWithConnContext(ctx, m, co)
	return resp, err
}

// answers returns the records of type qtype owned by name or by a name it is
// a CNAME alias of (within the same answer).
func answers(msg *dns.Msg, name string, qtype uint16) []dns.RR {
	owners := map[string]bool{dns.CanonicalName(name): true}
	for range maxCNAMEChain {
		added := false
		for _, rr := range msg.Answer {
			if c, ok := rr.(*dns.CNAME); ok && owners[dns.CanonicalName(c.Hdr.Name)] {
				t := dns.CanonicalName(c.Target)
				if !owners[t] {
					owners[t] = true
					added = true
				}
			}
		}
		if !added {
			break
		}
	}
	var out []dns.RR
	for _, rr := range msg.Answer {
		if rr.Header().Rrtype == qtype && owners[dns.CanonicalName(rr.Header().Name)] {
			out = append(out, rr)
		}
	}
	return out
}

// dnsTempError classifies a failed lookup as temporary {4,4,3}.
func dnsTempError(name string, err error) *Error {
	msg := "DNS lookup of " + name + " failed"
	if m := netErrorMessage(err); m != "connection failed" {
		msg += ": " + m
	}
	return &Error{Temporary: true, Enhanced: enhDNSTemp, Message: msg, Err: err}
}

// normalizeName trims a trailing dot and lower-cases name, rejecting what
// cannot be a DNS name. Internationalised (non-ASCII) names are rejected:
// they must be converted to A-labels by the caller.
func normalizeName(name string) (string, error) {
	n := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(name), "."))
	if n == "" {
		return "", &Error{Enhanced: enhBadDomain, Message: "empty domain"}
	}
	for i := 0; i < len(n); i++ {
		if n[i] >= 0x80 {
			return "", &Error{Enhanced: enhBadDomain, Message: "non-ASCII domain " + strconv.Quote(n) + " is not supported"}
		}
	}
	if _, ok := dns.IsDomainName(n); !ok {
		return "", &Error{Enhanced: enhBadDomain, Message: "invalid domain " + strconv.Quote(n)}
	}
	return n, nil
}

// parseIPLiteral accepts "192.0.2.1", "2001:db8::1", "[192.0.2.1]" and the
// RFC 5321 address literal "[IPv6:2001:db8::1]".
func parseIPLiteral(s string) (netip.Addr, bool) {
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		s = s[1 : len(s)-1]
		if len(s) > 5 && strings.EqualFold(s[:5], "IPv6:") {
			s = s[5:]
		}
	}
	ip, err := netip.ParseAddr(s)
	if err != nil || ip.Zone() != "" {
		return netip.Addr{}, false
	}
	return ip.Unmap(), true
}

// unescapeTXT undoes the presentation-format escaping (\" \\ \DDD) that
// miekg/dns applies to TXT character-strings.
func unescapeTXT(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 >= len(s) {
			b = append(b, s[i])
			continue
		}
		if i+3 < len(s) && isDigit(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3]) {
			v := int(s[i+1]-'0')*100 + int(s[i+2]-'0')*10 + int(s[i+3]-'0')
			if v <= 255 {
				b = append(b, byte(v))
				i += 3
				continue
			}
		}
		b = append(b, s[i+1])
		i++
	}
	return string(b)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
