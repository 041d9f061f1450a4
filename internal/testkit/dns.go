package testkit

import (
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// DNS is an authoritative-for-everything DNS server (github.com/miekg/dns) on
// 127.0.0.1:0, UDP and TCP on the same port.
//
// Unknown names answer NXDOMAIN; a known name without records of the asked
// type answers NOERROR with an empty answer. A CNAME is followed for other
// types, as a recursive resolver would. Answers are authoritative and claim
// recursion is available, so the server can be used directly as a stub
// resolver's nameserver. Names are case-insensitive, with or without the
// trailing dot.
type DNS struct {
	addr string
	udp  *dns.Server
	tcp  *dns.Server

	mu          sync.Mutex
	names       map[string]*dnsName
	truncateUDP bool // answer every UDP query with TC set and nothing else
	udpQueries  int
	tcpQueries  int
}

type dnsName struct {
	rrs   []dns.RR // served in this order
	rcode int      // != RcodeSuccess: answer this rcode for every type
}

// set replaces the records of the given types with rrs.
func (e *dnsName) set(rrs []dns.RR, types ...uint16) {
	kept := e.rrs[:0:0]
	for _, rr := range e.rrs {
		if !slices.Contains(types, rr.Header().Rrtype) {
			kept = append(kept, rr)
		}
	}
	e.rrs = append(kept, rrs...)
}

const dnsTTL = 60

// maxCNAMEChain bounds how many CNAMEs one answer follows.
const maxCNAMEChain = 8

func dnsHdr(name string, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: dns.Fqdn(name), Rrtype: t, Class: dns.ClassINET, Ttl: dnsTTL}
}

// StartDNS starts a DNS server on 127.0.0.1 with a kernel-chosen port, the
// same for UDP and TCP. It is shut down on t.Cleanup.
func StartDNS(t testing.TB) *DNS {
	t.Helper()
	d := &DNS{names: make(map[string]*dnsName)}

	var (
		pc  net.PacketConn
		ln  net.Listener
		err error
	)
	for attempt := 0; attempt < 10; attempt++ {
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("testkit: dns listen udp: %v", err)
		}
		ln, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
	}
	if err != nil {
		t.Fatalf("testkit: dns: no port free for both UDP and TCP: %v", err)
	}
	d.addr = pc.LocalAddr().String()

	handler := dns.HandlerFunc(d.serve)
	udpUp, tcpUp := make(chan struct{}), make(chan struct{})
	d.udp = &dns.Server{PacketConn: pc, Handler: handler, NotifyStartedFunc: func() { close(udpUp) }}
	d.tcp = &dns.Server{Listener: ln, Handler: handler, NotifyStartedFunc: func() { close(tcpUp) }}
	udpErr, tcpErr := make(chan error, 1), make(chan error, 1)
	go func() { udpErr <- d.udp.ActivateAndServe() }()
	go func() { tcpErr <- d.tcp.ActivateAndServe() }()
	for _, w := range []struct {
		up   chan struct{}
		errc chan error
		srv  *dns.Server
	}{{udpUp, udpErr, d.udp}, {tcpUp, tcpErr, d.tcp}} {
		select {
		case <-w.up:
		case err := <-w.errc:
			t.Fatalf("testkit: dns serve: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatalf("testkit: dns server on %s did not start", d.addr)
		}
	}
	t.Cleanup(func() {
		d.udp.Shutdown() //nolint:errcheck
		d.tcp.Shutdown() //nolint:errcheck
	})
	return d
}

// Addr returns "127.0.0.1:port", the address to use as resolver (UDP or TCP).
func (d *DNS) Addr() string { return d.addr }

func dnsKey(name string) string {
	return strings.ToLower(dns.Fqdn(name))
}

// entry returns the record set for name, creating it. d.mu must be held.
func (d *DNS) entry(name string) *dnsName {
	k := dnsKey(name)
	e := d.names[k]
	if e == nil {
		e = &dnsName{}
		d.names[k] = e
	}
	return e
}

// SetMX replaces domain's MX records: each key of prefs is a target host
// name, its value the preference. An empty map leaves domain known without
// MX records (NOERROR, empty answer); {".": 0} is a null MX (RFC 7505).
func (d *DNS) SetMX(domain string, prefs map[string]uint16) {
	mxs := make([]*dns.MX, 0, len(prefs))
	for host, pref := range prefs {
		mxs = append(mxs, &dns.MX{Hdr: dnsHdr(domain, dns.TypeMX), Preference: pref, Mx: dns.Fqdn(host)})
	}
	sort.Slice(mxs, func(i, j int) bool {
		if mxs[i].Preference != mxs[j].Preference {
			return mxs[i].Preference < mxs[j].Preference
		}
		return mxs[i].Mx < mxs[j].Mx
	})
	rrs := make([]dns.RR, len(mxs))
	for i, mx := range mxs {
		rrs[i] = mx
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.entry(domain).set(rrs, dns.TypeMX)
}

// SetA replaces host's addresses: IPv4 addresses are served as A records,
// IPv6 addresses as AAAA records. No ips leaves host known without
// addresses. It panics on a string that is not an IP address.
func (d *DNS) SetA(host string, ips ...string) {
	var a, aaaa []dns.RR
	for _, s := range ips {
		ip := net.ParseIP(s)
		switch {
		case ip == nil:
			panic(fmt.Sprintf("testkit: DNS.SetA(%q): %q is not an IP address", host, s))
		case ip.To4() != nil:
			a = append(a, &dns.A{Hdr: dnsHdr(host, dns.TypeA), A: ip.To4()})
		default:
			aaaa = append(aaaa, &dns.AAAA{Hdr: dnsHdr(host, dns.TypeAAAA), AAAA: ip})
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.entry(host).set(append(a, aaaa...), dns.TypeA, dns.TypeAAAA)
}

// SetTXT replaces name's TXT records, one record per value. A value longer
// than 255 bytes is split into 255-byte character-strings of one record
// (clients join them back). Values are raw bytes: no zone-file escaping.
func (d *DNS) SetTXT(name string, values ...string) {
	txt := make([]dns.RR, 0, len(values))
	for _, v := range values {
		var parts []string
		for len(v) > 255 {
			parts = append(parts, escapeTXT(v[:255]))
			v = v[255:]
		}
		parts = append(parts, escapeTXT(v))
		txt = append(txt, &dns.TXT{Hdr: dnsHdr(name, dns.TypeTXT), Txt: parts})
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.entry(name).set(txt, dns.TypeTXT)
}

// SetCNAME gives name a CNAME record pointing at target ("" removes it).
// A query for another type of name answers the CNAME followed by target's
// records of that type (NXDOMAIN if target is unknown), up to 8 links.
func (d *DNS) SetCNAME(name, target string) {
	var rrs []dns.RR
	if target != "" {
		rrs = []dns.RR{&dns.CNAME{Hdr: dnsHdr(name, dns.TypeCNAME), Target: dns.Fqdn(target)}}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.entry(name).set(rrs, dns.TypeCNAME)
}

// AddRR adds records written in zone-file syntax, such as
// "example.test. 300 IN MX 10 mx.example.test.", after the owner's existing
// ones. Records are served as written and in the order added, for tests
// that need what SetMX and the others normalise away (unsorted MX records,
// TXT records of several strings). It panics on a line that does not parse.
func (d *DNS) AddRR(records ...string) {
	rrs := make([]dns.RR, 0, len(records))
	for _, r := range records {
		rr, err := dns.NewRR(r)
		if err == nil && rr == nil {
			err = fmt.Errorf("no record")
		}
		if err != nil {
			panic(fmt.Sprintf("testkit: DNS.AddRR(%q): %v", r, err))
		}
		rrs = append(rrs, rr)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, rr := range rrs {
		e := d.entry(rr.Header().Name)
		e.rrs = append(e.rrs, rr)
	}
}

// escapeTXT escapes a raw character-string for miekg/dns, which interprets
// backslash escapes when packing TXT data.
func escapeTXT(s string) string {
	return strings.ReplaceAll(s, `\`, `\\`)
}

// Fail makes every query for name answer rcode (e.g. dns.RcodeServerFailure,
// dns.RcodeRefused) until Remove or Fail(name, dns.RcodeSuccess), which
// serves name's records again.
func (d *DNS) Fail(name string, rcode int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.entry(name).rcode = rcode
}

// Remove forgets name and all its records and failures: it is NXDOMAIN again.
func (d *DNS) Remove(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.names, dnsKey(name))
}

// TruncateUDP makes every UDP answer, until TruncateUDP(false), a bare
// reply with the TC bit set, so that clients retry over TCP.
func (d *DNS) TruncateUDP(on bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.truncateUDP = on
}

// Queries returns how many queries arrived so far over UDP and over TCP.
func (d *DNS) Queries() (udp, tcp int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.udpQueries, d.tcpQueries
}

func (d *DNS) serve(w dns.ResponseWriter, req *dns.Msg) {
	_, overTCP := w.LocalAddr().(*net.TCPAddr)
	d.mu.Lock()
	if overTCP {
		d.tcpQueries++
	} else {
		d.udpQueries++
	}
	truncate := !overTCP && d.truncateUDP
	d.mu.Unlock()

	m := new(dns.Msg)
	if len(req.Question) != 1 || req.Opcode != dns.OpcodeQuery {
		m.SetRcode(req, dns.RcodeFormatError)
		if req.Opcode != dns.OpcodeQuery {
			m.Rcode = dns.RcodeNotImplemented
		}
		w.WriteMsg(m) //nolint:errcheck
		return
	}
	m.SetReply(req)
	m.Authoritative = true
	m.RecursionAvailable = true
	if truncate {
		m.Truncated = true
		w.WriteMsg(m) //nolint:errcheck
		return
	}
	q := req.Question[0]

	d.mu.Lock()
	d.answer(m, q.Name, q.Qtype)
	d.mu.Unlock()

	size := dns.MinMsgSize
	if overTCP {
		size = dns.MaxMsgSize
	}
	if opt := req.IsEdns0(); opt != nil {
		if _, ok := w.LocalAddr().(*net.UDPAddr); ok && int(opt.UDPSize()) > size {
			size = int(opt.UDPSize())
		}
		m.SetEdns0(uint16(min(size, dns.MaxMsgSize)), false)
	}
	m.Truncate(size)
	w.WriteMsg(m) //nolint:errcheck
}

// answer fills m's answer section and rcode for qname and qtype, following
// CNAMEs. The first owner is written as asked (the client may compare case).
// d.mu must be held.
func (d *DNS) answer(m *dns.Msg, qname string, qtype uint16) {
	owner := qname
	for range maxCNAMEChain {
		e := d.names[dnsKey(owner)]
		switch {
		case e == nil:
			m.Rcode = dns.RcodeNameError
			return
		case e.rcode != dns.RcodeSuccess:
			m.Rcode = e.rcode
			return
		}
		var cname *dns.CNAME
		for _, rr := range e.rrs {
			if t := rr.Header().Rrtype; t == qtype || qtype == dns.TypeANY {
				m.Answer = append(m.Answer, withOwner(rr, owner))
			} else if c, ok := rr.(*dns.CNAME); ok {
				cname = c
			}
		}
		if cname == nil {
			return
		}
		m.Answer = append(m.Answer, withOwner(cname, owner))
		owner = cname.Target
	}
}

// withOwner returns a copy of rr owned by name.
func withOwner(rr dns.RR, name string) dns.RR {
	rr = dns.Copy(rr)
	rr.Header().Name = name
	return rr
}
