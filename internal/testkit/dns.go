package testkit

import (
	"testing"

	"github.com/pigeonpost/pigeonpost/internal/testkit/dnsserver"
)

// DNS is the dnsserver on 127.0.0.1:0 (UDP and TCP on the same port), with
// its records set directly: authoritative for every name it is given,
// NXDOMAIN for the others; see package dnsserver. The methods of
// dnsserver.Server (Addr, Update, TruncateUDP, Queries, ...) are available
// as they are.
type DNS struct {
	*dnsserver.Server
}

// StartDNS starts a DNS server on 127.0.0.1 with a kernel-chosen port, the
// same for UDP and TCP. It is shut down on t.Cleanup.
func StartDNS(t testing.TB) *DNS {
	t.Helper()
	srv, err := dnsserver.Start(dnsserver.Options{})
	if err != nil {
		t.Fatalf("testkit: dns: %v", err)
	}
	t.Cleanup(srv.Close)
	return &DNS{srv}
}

// SetMX replaces domain's MX records; see dnsserver.Zone.SetMX.
func (d *DNS) SetMX(domain string, prefs map[string]uint16) {
	d.Update(func(z *dnsserver.Zone) { z.SetMX(domain, prefs) })
}

// SetA replaces host's A and AAAA records; see dnsserver.Zone.SetA.
func (d *DNS) SetA(host string, ips ...string) {
	d.Update(func(z *dnsserver.Zone) { z.SetA(host, ips...) })
}

// SetAInTurn makes host answer ips[n] to its n-th A (and AAAA) query, the
// last from then on: DNS rebinding; see dnsserver.Zone.SetAInTurn.
func (d *DNS) SetAInTurn(host string, ips ...string) {
	d.Update(func(z *dnsserver.Zone) { z.SetAInTurn(host, ips...) })
}

// SetTXT replaces name's TXT records; see dnsserver.Zone.SetTXT.
func (d *DNS) SetTXT(name string, values ...string) {
	d.Update(func(z *dnsserver.Zone) { z.SetTXT(name, values...) })
}

// SetCNAME gives name a CNAME record ("" removes it); see
// dnsserver.Zone.SetCNAME.
func (d *DNS) SetCNAME(name, target string) {
	d.Update(func(z *dnsserver.Zone) { z.SetCNAME(name, target) })
}

// AddRR adds records written in zone-file syntax; see dnsserver.Zone.AddRR.
func (d *DNS) AddRR(records ...string) {
	d.Update(func(z *dnsserver.Zone) { z.AddRR(records...) })
}

// Fail makes every query for name answer rcode; see dnsserver.Zone.Fail.
func (d *DNS) Fail(name string, rcode int) {
	d.Update(func(z *dnsserver.Zone) { z.Fail(name, rcode) })
}

// Remove forgets name: it is NXDOMAIN again.
func (d *DNS) Remove(name string) {
	d.Update(func(z *dnsserver.Zone) { z.Remove(name) })
}
