package testkit

import (
	"fmt"
	"net"
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
// type answers NOERROR with an empty answer. Answers are authoritative and
// claim recursion is available, so the server can be used directly as a
// stub resolver's nameserver. Names are case-insensitive, with or without
// the trailing dot.
type DNS struct {
	addr string
	udp  *dns.Server
	tcp  *dns.Server

	mu    sync.Mutex
	names map[string]*dnsName
}

type dnsName struct {
	mx    []*dns.MX // sorted by preference, then host
	a     []net.IP
	aaaa  []net.IP
	txt   [][]string
	cname string // target of a CNAME record, "" for none
	rcode int    // != RcodeSuccess: answer this rcode for every type
}

const dnsTTL = 60

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
		mxs = append(mxs, &dns.MX{Preference: pref, Mx: dns.Fqdn(host)})
	}
	sort.Slice(mxs, func(i, j int) bool {
		if mxs[i].Preference != mxs[j].Preference {
			return mxs[i].Preference < mxs[j].Preference
		}
		return mxs[i].Mx < mxs[j].Mx
	})
	d.mu.Lock()
	defer d.mu.Unlock()
	d.entry(domain).mx = mxs
}

// SetA replaces host's addresses: IPv4 addresses are served as A records,
// IPv6 addresses as AAAA records. No ips leaves host known without
// addresses. It panics on a string that is not an IP address.
func (d *DNS) SetA(host string, ips ...string) {
	var a, aaaa []net.IP
	for _, s := range ips {
		ip := net.ParseIP(s)
		switch {
		case ip == nil:
			panic(fmt.Sprintf("testkit: DNS.SetA(%q): %q is not an IP address", host, s))
		case ip.To4() != nil:
			a = append(a, ip.To4())
		default:
			aaaa = append(aaaa, ip)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.entry(host)
	e.a, e.aaaa = a, aaaa
}

// SetTXT replaces name's TXT records, one record per value. A value longer
// than 255 bytes is split into 255-byte character-strings of one record
// (clients join them back). Values are raw bytes: no zone-file escaping.
func (d *DNS) SetTXT(name string, values ...string) {
	txt := make([][]string, 0, len(values))
	for _, v := range values {
		var parts []string
		for len(v) > 255 {
			parts = append(parts, escapeTXT(v[:255]))
			v = v[255:]
		}
		parts = append(parts, escapeTXT(v))
		txt = append(txt, parts)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.entry(name).txt = txt
}

// SetCNAME gives name a CNAME record pointing at target ("" removes it).
// It is answered to CNAME and ANY queries only: the server does not chase
// the alias for other types.
func (d *DNS) SetCNAME(name, target string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if target != "" {
		target = dns.Fqdn(target)
	}
	d.entry(name).cname = target
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

func (d *DNS) serve(w dns.ResponseWriter, req *dns.Msg) {
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
	q := req.Question[0]
	qname := q.Name

	d.mu.Lock()
	e := d.names[dnsKey(qname)]
	switch {
	case e == nil:
		m.Rcode = dns.RcodeNameError
	case e.rcode != dns.RcodeSuccess:
		m.Rcode = e.rcode
	default:
		m.Answer = e.answer(qname, q.Qtype)
	}
	d.mu.Unlock()

	size := dns.MinMsgSize
	if _, ok := w.LocalAddr().(*net.TCPAddr); ok {
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

// answer builds the answer section for qtype. d.mu must be held.
func (e *dnsName) answer(qname string, qtype uint16) []dns.RR {
	hdr := func(t uint16) dns.RR_Header {
		return dns.RR_Header{Name: qname, Rrtype: t, Class: dns.ClassINET, Ttl: dnsTTL}
	}
	var rrs []dns.RR
	if qtype == dns.TypeMX || qtype == dns.TypeANY {
		for _, mx := range e.mx {
			rrs = append(rrs, &dns.MX{Hdr: hdr(dns.TypeMX), Preference: mx.Preference, Mx: mx.Mx})
		}
	}
	if qtype == dns.TypeA || qtype == dns.TypeANY {
		for _, ip := range e.a {
			rrs = append(rrs, &dns.A{Hdr: hdr(dns.TypeA), A: ip})
		}
	}
	if qtype == dns.TypeAAAA || qtype == dns.TypeANY {
		for _, ip := range e.aaaa {
			rrs = append(rrs, &dns.AAAA{Hdr: hdr(dns.TypeAAAA), AAAA: ip})
		}
	}
	if qtype == dns.TypeTXT || qtype == dns.TypeANY {
		for _, txt := range e.txt {
			rrs = append(rrs, &dns.TXT{Hdr: hdr(dns.TypeTXT), Txt: txt})
		}
	}
	if (qtype == dns.TypeCNAME || qtype == dns.TypeANY) && e.cname != "" {
		rrs = append(rrs, &dns.CNAME{Hdr: hdr(dns.TypeCNAME), Target: e.cname})
	}
	return rrs
}
