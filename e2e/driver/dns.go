package main

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// dnsServer is a loopback DNS server authoritative for every name it knows:
// the recipient domain's MX and A records and the TXT records that the
// gateway asks the sending domain to publish. Unknown names are NXDOMAIN.
type dnsServer struct {
	addr     string
	udp, tcp *dns.Server

	mu    sync.Mutex
	names map[string]*dnsRecords
}

type dnsRecords struct {
	a   []net.IP
	mx  []*dns.MX
	txt []string
}

func startDNS() (*dnsServer, error) {
	d := &dnsServer{names: map[string]*dnsRecords{}}
	var pc net.PacketConn
	var ln net.Listener
	var err error
	for range 20 { // the same port for UDP and TCP
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			return nil, err
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("dns: no port free for both UDP and TCP: %w", err)
	}
	d.addr = pc.LocalAddr().String()
	h := dns.HandlerFunc(d.serve)
	started := make(chan struct{}, 2)
	d.udp = &dns.Server{PacketConn: pc, Handler: h, NotifyStartedFunc: func() { started <- struct{}{} }}
	d.tcp = &dns.Server{Listener: ln, Handler: h, NotifyStartedFunc: func() { started <- struct{}{} }}
	errc := make(chan error, 2)
	go func() { errc <- d.udp.ActivateAndServe() }()
	go func() { errc <- d.tcp.ActivateAndServe() }()
	for range 2 {
		select {
		case <-started:
		case err := <-errc:
			d.close()
			return nil, fmt.Errorf("dns: %w", err)
		case <-time.After(10 * time.Second):
			d.close()
			return nil, fmt.Errorf("dns: server on %s did not start", d.addr)
		}
	}
	return d, nil
}

func (d *dnsServer) close() {
	if d.udp != nil {
		_ = d.udp.Shutdown()
	}
	if d.tcp != nil {
		_ = d.tcp.Shutdown()
	}
}

func (d *dnsServer) entry(name string) *dnsRecords {
	k := strings.ToLower(dns.Fqdn(name))
	if d.names[k] == nil {
		d.names[k] = &dnsRecords{}
	}
	return d.names[k]
}

func (d *dnsServer) addA(name, ip string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.entry(name)
	e.a = append(e.a, net.ParseIP(ip).To4())
}

func (d *dnsServer) addMX(name, host string, pref uint16) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.entry(name)
	e.mx = append(e.mx, &dns.MX{Preference: pref, Mx: dns.Fqdn(host)})
}

// addTXT publishes value under name; serve splits it into character-strings
// of at most 255 bytes, as a zone file would (a DKIM key is longer).
func (d *dnsServer) addTXT(name, value string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.entry(name)
	e.txt = append(e.txt, value)
}

func (d *dnsServer) serve(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	m.RecursionAvailable = true
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		_ = w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	d.mu.Lock()
	e := d.names[strings.ToLower(q.Name)]
	if e == nil {
		m.Rcode = dns.RcodeNameError
	} else {
		hdr := func(t uint16) dns.RR_Header {
			return dns.RR_Header{Name: q.Name, Rrtype: t, Class: dns.ClassINET, Ttl: 60}
		}
		switch q.Qtype {
		case dns.TypeA:
			for _, ip := range e.a {
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr(dns.TypeA), A: ip})
			}
		case dns.TypeMX:
			for _, mx := range e.mx {
				m.Answer = append(m.Answer, &dns.MX{Hdr: hdr(dns.TypeMX), Preference: mx.Preference, Mx: mx.Mx})
			}
		case dns.TypeTXT:
			for _, v := range e.txt {
				m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr(dns.TypeTXT), Txt: splitTXT(v)})
			}
		}
	}
	d.mu.Unlock()
	if opt := req.IsEdns0(); opt != nil {
		m.SetEdns0(opt.UDPSize(), false)
	}
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		size := 512
		if opt := req.IsEdns0(); opt != nil {
			size = int(opt.UDPSize())
		}
		m.Truncate(size)
	}
	_ = w.WriteMsg(m)
}

// splitTXT cuts s into character-strings of at most 255 bytes, escaping
// what miekg/dns's presentation format needs escaped.
func splitTXT(s string) []string {
	var out []string
	for len(s) > 255 {
		out = append(out, escapeTXT(s[:255]))
		s = s[255:]
	}
	return append(out, escapeTXT(s))
}

func escapeTXT(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s)
}

// txtRecords returns the TXT records of the names that contain part, the
// first value of each by name.
func (d *dnsServer) txtRecords(part string) map[string]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string]string{}
	for name, e := range d.names {
		if strings.Contains(name, part) && len(e.txt) > 0 {
			out[strings.TrimSuffix(name, ".")] = e.txt[0]
		}
	}
	return out
}

// lookupTXT asks the server over the network, as a DKIM verifier would.
func (d *dnsServer) lookupTXT(name string) ([]string, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
	c := &dns.Client{Net: "tcp", Timeout: 5 * time.Second}
	resp, _, err := c.Exchange(m, d.addr)
	if err != nil {
		return nil, err
	}
	if resp.Rcode != dns.RcodeSuccess {
		return nil, fmt.Errorf("TXT %s: %s", name, dns.RcodeToString[resp.Rcode])
	}
	var out []string
	for _, rr := range resp.Answer {
		if t, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.NewReplacer(`\\`, `\`, `\"`, `"`).Replace(strings.Join(t.Txt, "")))
		}
	}
	return out, nil
}
