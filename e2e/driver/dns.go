package main

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/pigeonpost/pigeonpost/internal/testkit/dnsserver"
)

// dnsServer is the loopback DNS server authoritative for every name it
// knows: the recipient domain's MX and A records and the TXT records that
// the gateway asks the sending domain to publish (kept in txt as well, for
// dkimpy). Unknown names are NXDOMAIN.
type dnsServer struct {
	*dnsserver.Server

	mu  sync.Mutex
	txt map[string][]string // published TXT values by lower-case name without the trailing dot
}

func startDNS() (*dnsServer, error) {
	srv, err := dnsserver.Start(dnsserver.Options{})
	if err != nil {
		return nil, err
	}
	return &dnsServer{Server: srv, txt: map[string][]string{}}, nil
}

// addTXT publishes value under name; the server splits it into
// character-strings of at most 255 bytes, as a zone file would (a DKIM key
// is longer).
func (d *dnsServer) addTXT(name, value string) {
	d.Update(func(z *dnsserver.Zone) { z.AddTXT(name, value) })
	k := strings.TrimSuffix(strings.ToLower(name), ".")
	d.mu.Lock()
	defer d.mu.Unlock()
	d.txt[k] = append(d.txt[k], value)
}

// txtRecords returns the TXT records of the names that contain part, the
// first value of each by name.
func (d *dnsServer) txtRecords(part string) map[string]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string]string{}
	for name, values := range d.txt {
		if strings.Contains(name+".", part) && len(values) > 0 {
			out[name] = values[0]
		}
	}
	return out
}

// lookupTXT asks the server over the network, as a DKIM verifier would.
func (d *dnsServer) lookupTXT(name string) ([]string, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
	c := &dns.Client{Net: "tcp", Timeout: 5 * time.Second}
	resp, _, err := c.Exchange(m, d.Addr())
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
