// Package dnsserver is the one DNS server of pigeonpost's tests and tools:
// authoritative for every name it is given (github.com/miekg/dns), on
// loopback, UDP and TCP on the same port. It is a leaf without "testing",
// so that commands (e2e/driver, bench/dnsd) use it as they are;
// internal/testkit wraps it for tests (testkit.StartDNS).
//
// Unknown names answer NXDOMAIN; a known name without records of the asked
// type answers NOERROR with an empty answer. A CNAME is followed for other
// types, as a recursive resolver would. Answers are authoritative and claim
// recursion is available, so the server can be used directly as a stub
// resolver's nameserver. Names are case-insensitive, with or without the
// trailing dot.
package dnsserver

import (
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Options configures Start.
type Options struct {
	// Addr is the UDP and TCP listen address; "" means "127.0.0.1:0". With
	// port 0 the kernel picks a port free for both.
	Addr string
	// Refresh, when set, runs before each query is answered, outside the
	// server's lock: it may call Update (bench/dnsd re-reads its records
	// file there when the file changed).
	Refresh func(*Server)
}

// Server is a running DNS server.
type Server struct {
	addr    string
	udp     *dns.Server
	tcp     *dns.Server
	refresh func(*Server)
	errc    chan error // what serving UDP and TCP ended with

	mu          sync.Mutex
	zone        Zone
	truncateUDP bool // answer every UDP query with TC set and nothing else
	udpQueries  int
	tcpQueries  int
}

// Start starts a server and waits until it answers on UDP and TCP.
func Start(opts Options) (*Server, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	d := &Server{refresh: opts.Refresh, zone: Zone{names: make(map[string]*name)}}
	var (
		pc  net.PacketConn
		ln  net.Listener
		err error
	)
	for range 20 { // the same port for UDP and TCP: take a UDP port, then try TCP on it
		if pc, err = net.ListenPacket("udp", opts.Addr); err != nil {
			return nil, fmt.Errorf("dnsserver: listen udp: %w", err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("dnsserver: no port free for both UDP and TCP: %w", err)
	}
	d.addr = pc.LocalAddr().String()

	handler := dns.HandlerFunc(d.serve)
	up := make(chan struct{}, 2)
	d.udp = &dns.Server{PacketConn: pc, Handler: handler, NotifyStartedFunc: func() { up <- struct{}{} }}
	d.tcp = &dns.Server{Listener: ln, Handler: handler, NotifyStartedFunc: func() { up <- struct{}{} }}
	d.errc = make(chan error, 2)
	go func() { d.errc <- d.udp.ActivateAndServe() }()
	go func() { d.errc <- d.tcp.ActivateAndServe() }()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for range 2 {
		select {
		case <-up:
		case err := <-d.errc:
			d.Close()
			return nil, fmt.Errorf("dnsserver: serve: %w", err)
		case <-timeout.C:
			d.Close()
			return nil, fmt.Errorf("dnsserver: server on %s did not start", d.addr)
		}
	}
	return d, nil
}

// Addr returns "127.0.0.1:port", the address to use as resolver (UDP or TCP).
func (d *Server) Addr() string { return d.addr }

// Errors receives what serving UDP or TCP ended with, if it ends before
// Close (nil after Close).
func (d *Server) Errors() <-chan error { return d.errc }

// Close shuts the server down.
func (d *Server) Close() {
	_ = d.udp.Shutdown()
	_ = d.tcp.Shutdown()
}

// Update changes the records with fn, atomically: a query sees the zone as
// it was before fn or after.
func (d *Server) Update(fn func(z *Zone)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fn(&d.zone)
}

// TruncateUDP makes every UDP answer, until TruncateUDP(false), a bare
// reply with the TC bit set, so that clients retry over TCP.
func (d *Server) TruncateUDP(on bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.truncateUDP = on
}

// Queries returns how many queries arrived so far over UDP and over TCP.
func (d *Server) Queries() (udp, tcp int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.udpQueries, d.tcpQueries
}

// Zone is the server's records, changed through Server.Update.
type Zone struct {
	names map[string]*name
}

type name struct {
	rrs   []dns.RR // served in this order
	rcode int      // != RcodeSuccess: answer this rcode for every type
	// turns, when set, are the address records of successive lookups
	// (SetAInTurn); answered counts the queries of each type served.
	turns    [][]dns.RR
	answered map[uint16]int
}

// set replaces the records of the given types with rrs.
func (e *name) set(rrs []dns.RR, types ...uint16) {
	kept := e.rrs[:0:0]
	for _, rr := range e.rrs {
		if !slices.Contains(types, rr.Header().Rrtype) {
			kept = append(kept, rr)
		}
	}
	e.rrs = append(kept, rrs...)
}

// TTL is the TTL of the records Zone's setters make.
const TTL = 60

// maxCNAMEChain bounds how many CNAMEs one answer follows.
const maxCNAMEChain = 8

func hdr(owner string, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: dns.Fqdn(owner), Rrtype: t, Class: dns.ClassINET, Ttl: TTL}
}

func key(owner string) string {
	return strings.ToLower(dns.Fqdn(owner))
}

// entry returns the record set for owner, creating it.
func (z *Zone) entry(owner string) *name {
	k := key(owner)
	e := z.names[k]
	if e == nil {
		e = &name{}
		z.names[k] = e
	}
	return e
}

// SetMX replaces domain's MX records: each key of prefs is a target host
// name, its value the preference. An empty map leaves domain known without
// MX records (NOERROR, empty answer); {".": 0} is a null MX (RFC 7505).
func (z *Zone) SetMX(domain string, prefs map[string]uint16) {
	mxs := make([]*dns.MX, 0, len(prefs))
	for host, pref := range prefs {
		mxs = append(mxs, &dns.MX{Hdr: hdr(domain, dns.TypeMX), Preference: pref, Mx: dns.Fqdn(host)})
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
	z.entry(domain).set(rrs, dns.TypeMX)
}

// SetA replaces host's addresses: IPv4 addresses are served as A records,
// IPv6 addresses as AAAA records. No ips leaves host known without
// addresses. It panics on a string that is not an IP address.
func (z *Zone) SetA(host string, ips ...string) {
	e := z.entry(host)
	e.set(addressRecords("SetA", host, ips), dns.TypeA, dns.TypeAAAA)
	e.turns, e.answered = nil, nil
}

// addressRecords returns host's A records for the IPv4 addresses of ips,
// then its AAAA records for the IPv6 ones; it panics on a string that is
// not an IP address.
func addressRecords(setter, host string, ips []string) []dns.RR {
	var a, aaaa []dns.RR
	for _, s := range ips {
		ip := net.ParseIP(s)
		switch {
		case ip == nil:
			panic(fmt.Sprintf("dnsserver: Zone.%s(%q): %q is not an IP address", setter, host, s))
		case ip.To4() != nil:
			a = append(a, &dns.A{Hdr: hdr(host, dns.TypeA), A: ip.To4()})
		default:
			aaaa = append(aaaa, &dns.AAAA{Hdr: hdr(host, dns.TypeAAAA), AAAA: ip})
		}
	}
	return append(a, aaaa...)
}

// SetAInTurn makes host's address change from one lookup to the next, as a
// name does under DNS rebinding: the n-th A query (and, separately, the
// n-th AAAA query) is answered from ips[n], the last one from then on.
// Each ips[n] is one IPv4 or IPv6 address; a query of the other family
// gets an empty answer. It panics on a string that is not an IP address.
func (z *Zone) SetAInTurn(host string, ips ...string) {
	turns := make([][]dns.RR, len(ips))
	for i, ip := range ips {
		turns[i] = addressRecords("SetAInTurn", host, []string{ip})
	}
	e := z.entry(host)
	e.set(nil, dns.TypeA, dns.TypeAAAA)
	e.turns, e.answered = turns, map[uint16]int{}
}

// SetTXT replaces owner's TXT records, one record per value. A value longer
// than 255 bytes is split into 255-byte character-strings of one record
// (clients join them back). Values are raw bytes: no zone-file escaping.
func (z *Zone) SetTXT(owner string, values ...string) {
	z.entry(owner).set(txtRecords(owner, values), dns.TypeTXT)
}

// AddTXT adds TXT records to owner's, after the existing ones, as SetTXT
// makes them.
func (z *Zone) AddTXT(owner string, values ...string) {
	e := z.entry(owner)
	e.rrs = append(e.rrs, txtRecords(owner, values)...)
}

func txtRecords(owner string, values []string) []dns.RR {
	txt := make([]dns.RR, 0, len(values))
	for _, v := range values {
		var parts []string
		for len(v) > 255 {
			parts = append(parts, escapeTXT(v[:255]))
			v = v[255:]
		}
		parts = append(parts, escapeTXT(v))
		txt = append(txt, &dns.TXT{Hdr: hdr(owner, dns.TypeTXT), Txt: parts})
	}
	return txt
}

// escapeTXT escapes a raw character-string for miekg/dns, which interprets
// backslash escapes when packing TXT data.
func escapeTXT(s string) string {
	return strings.ReplaceAll(s, `\`, `\\`)
}

// SetCNAME gives owner a CNAME record pointing at target ("" removes it).
// A query for another type of owner answers the CNAME followed by target's
// records of that type (NXDOMAIN if target is unknown), up to 8 links.
func (z *Zone) SetCNAME(owner, target string) {
	var rrs []dns.RR
	if target != "" {
		rrs = []dns.RR{&dns.CNAME{Hdr: hdr(owner, dns.TypeCNAME), Target: dns.Fqdn(target)}}
	}
	z.entry(owner).set(rrs, dns.TypeCNAME)
}

// AddRR adds records written in zone-file syntax, such as
// "example.test. 300 IN MX 10 mx.example.test.", after the owner's existing
// ones. Records are served as written and in the order added, for what
// SetMX and the others normalise away (unsorted MX records, TXT records of
// several strings). It panics on a line that does not parse.
func (z *Zone) AddRR(records ...string) {
	rrs := make([]dns.RR, 0, len(records))
	for _, r := range records {
		rr, err := dns.NewRR(r)
		if err == nil && rr == nil {
			err = fmt.Errorf("no record")
		}
		if err != nil {
			panic(fmt.Sprintf("dnsserver: Zone.AddRR(%q): %v", r, err))
		}
		rrs = append(rrs, rr)
	}
	for _, rr := range rrs {
		e := z.entry(rr.Header().Name)
		e.rrs = append(e.rrs, rr)
	}
}

// Fail makes every query for owner answer rcode (e.g. dns.RcodeServerFailure,
// dns.RcodeRefused) until Remove or Fail(owner, dns.RcodeSuccess), which
// serves owner's records again.
func (z *Zone) Fail(owner string, rcode int) {
	z.entry(owner).rcode = rcode
}

// Remove forgets owner and all its records and failures: it is NXDOMAIN again.
func (z *Zone) Remove(owner string) {
	delete(z.names, key(owner))
}

// Clear forgets every name.
func (z *Zone) Clear() {
	clear(z.names)
}

func (d *Server) serve(w dns.ResponseWriter, req *dns.Msg) {
	if d.refresh != nil {
		d.refresh(d)
	}
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
	d.zone.answer(m, q.Name, q.Qtype)
	d.mu.Unlock()

	size := dns.MinMsgSize
	if overTCP {
		size = dns.MaxMsgSize
	}
	if opt := req.IsEdns0(); opt != nil {
		if !overTCP && int(opt.UDPSize()) > size {
			size = int(opt.UDPSize())
		}
		m.SetEdns0(uint16(min(size, dns.MaxMsgSize)), false)
	}
	m.Truncate(size)
	w.WriteMsg(m) //nolint:errcheck
}

// answer fills m's answer section and rcode for qname and qtype, following
// CNAMEs. The first owner is written as asked (the client may compare case).
func (z *Zone) answer(m *dns.Msg, qname string, qtype uint16) {
	owner := qname
	for range maxCNAMEChain {
		e := z.names[key(owner)]
		switch {
		case e == nil:
			m.Rcode = dns.RcodeNameError
			return
		case e.rcode != dns.RcodeSuccess:
			m.Rcode = e.rcode
			return
		}
		if len(e.turns) > 0 && (qtype == dns.TypeA || qtype == dns.TypeAAAA) {
			turn := e.turns[min(e.answered[qtype], len(e.turns)-1)]
			e.answered[qtype]++
			for _, rr := range turn {
				if rr.Header().Rrtype == qtype {
					m.Answer = append(m.Answer, withOwner(rr, owner))
				}
			}
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

// withOwner returns a copy of rr owned by owner.
func withOwner(rr dns.RR, owner string) dns.RR {
	rr = dns.Copy(rr)
	rr.Header().Name = owner
	return rr
}
