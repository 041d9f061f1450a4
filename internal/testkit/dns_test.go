package testkit

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func query(t *testing.T, d *DNS, network, name string, qtype uint16, edns bool) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	if edns {
		m.SetEdns0(4096, false)
	}
	c := &dns.Client{Net: network, Timeout: 5 * time.Second}
	r, _, err := c.Exchange(m, d.Addr())
	if err != nil {
		t.Fatalf("%s %s %s: %v", network, name, dns.TypeToString[qtype], err)
	}
	return r
}

func TestDNS(t *testing.T) {
	d := StartDNS(t)
	if host, _, _ := net.SplitHostPort(d.Addr()); host != "127.0.0.1" {
		t.Fatalf("Addr() = %q", d.Addr())
	}
	d.SetMX("Example.COM", map[string]uint16{"mx2.example.com.": 20, "MX1.example.com": 10})
	d.SetA("mx1.example.com.", "127.0.0.1", "::1")
	long := strings.Repeat("k", 600)
	d.SetTXT("example.com", "v=spf1 -all", long)

	r := query(t, d, "udp", "EXAMPLE.com", dns.TypeMX, false)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 2 || !r.Authoritative {
		t.Fatalf("MX: %v", r)
	}
	for i, want := range []string{"mx1.example.com.", "mx2.example.com."} {
		mx := r.Answer[i].(*dns.MX)
		if !strings.EqualFold(mx.Mx, want) || mx.Preference != uint16(10*(i+1)) {
			t.Fatalf("MX[%d] = %v", i, mx)
		}
	}

	r = query(t, d, "udp", "mx1.example.com", dns.TypeA, false)
	if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "127.0.0.1" {
		t.Fatalf("A: %v", r)
	}
	r = query(t, d, "udp", "mx1.example.com", dns.TypeAAAA, false)
	if len(r.Answer) != 1 || r.Answer[0].(*dns.AAAA).AAAA.String() != "::1" {
		t.Fatalf("AAAA: %v", r)
	}

	// Known name, type without records: NOERROR, empty.
	r = query(t, d, "udp", "example.com", dns.TypeA, false)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 {
		t.Fatalf("A example.com: %v", r)
	}
	// Unknown: NXDOMAIN.
	r = query(t, d, "udp", "nope.example.com", dns.TypeMX, false)
	if r.Rcode != dns.RcodeNameError {
		t.Fatalf("unknown: %v", r)
	}

	// TXT: the long value does not fit a plain UDP answer; TCP and EDNS0 carry it.
	checkTXT := func(r *dns.Msg) {
		t.Helper()
		var got []string
		for _, rr := range r.Answer {
			txt := rr.(*dns.TXT)
			if len(txt.Txt) > 1 && len(txt.Txt[0]) != 255 {
				t.Fatalf("first string of split TXT has %d bytes", len(txt.Txt[0]))
			}
			got = append(got, strings.Join(txt.Txt, ""))
		}
		if len(got) != 2 || got[0] != "v=spf1 -all" || got[1] != long {
			t.Fatalf("TXT: %q", got)
		}
	}
	if r := query(t, d, "udp", "example.com", dns.TypeTXT, false); !r.Truncated {
		t.Fatalf("600-byte TXT over UDP without EDNS0 not truncated: %v", r)
	}
	checkTXT(query(t, d, "tcp", "example.com", dns.TypeTXT, false))
	checkTXT(query(t, d, "udp", "example.com", dns.TypeTXT, true))

	d.Fail("example.com", dns.RcodeServerFailure)
	if r := query(t, d, "udp", "example.com", dns.TypeMX, false); r.Rcode != dns.RcodeServerFailure {
		t.Fatalf("after Fail: %v", r)
	}
	if r := query(t, d, "tcp", "example.com", dns.TypeTXT, false); r.Rcode != dns.RcodeServerFailure {
		t.Fatalf("after Fail (tcp): %v", r)
	}
	d.Fail("example.com", dns.RcodeSuccess)
	if r := query(t, d, "udp", "example.com", dns.TypeMX, false); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 2 {
		t.Fatalf("after Fail(0): %v", r)
	}
	d.Remove("EXAMPLE.COM.")
	if r := query(t, d, "tcp", "example.com", dns.TypeMX, false); r.Rcode != dns.RcodeNameError {
		t.Fatalf("after Remove: %v", r)
	}
	d.Fail("broken.test", dns.RcodeRefused)
	if r := query(t, d, "udp", "broken.test", dns.TypeA, false); r.Rcode != dns.RcodeRefused {
		t.Fatalf("Fail on an unknown name: %v", r)
	}
}

// TestDNSGoResolver checks that net.Resolver (pure Go) accepts the answers.
func TestDNSGoResolver(t *testing.T) {
	d := StartDNS(t)
	d.SetMX("example.test", map[string]uint16{"mx.example.test": 5})
	d.SetA("mx.example.test", "127.0.0.1")
	d.SetTXT("_dmarc.example.test", `v=DMARC1; p=reject`, `back\slash "quoted"`)
	d.SetMX("nomx.example.test", nil)

	for _, network := range []string{"udp", "tcp"} {
		res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, network, d.Addr())
		}}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		mxs, err := res.LookupMX(ctx, "example.test.")
		if err != nil || len(mxs) != 1 || mxs[0].Host != "mx.example.test." || mxs[0].Pref != 5 {
			t.Fatalf("%s LookupMX = %v, %v", network, mxs, err)
		}
		addrs, err := res.LookupHost(ctx, "mx.example.test.")
		if err != nil || len(addrs) != 1 || addrs[0] != "127.0.0.1" {
			t.Fatalf("%s LookupHost = %v, %v", network, addrs, err)
		}
		txts, err := res.LookupTXT(ctx, "_dmarc.example.test.")
		if err != nil || len(txts) != 2 || txts[0] != "v=DMARC1; p=reject" || txts[1] != `back\slash "quoted"` {
			t.Fatalf("%s LookupTXT = %q, %v", network, txts, err)
		}
		var dnsErr *net.DNSError
		if _, err := res.LookupMX(ctx, "missing.example.test."); !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
			t.Fatalf("%s LookupMX missing = %v", network, err)
		}
		if _, err := res.LookupMX(ctx, "nomx.example.test."); !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
			t.Fatalf("%s LookupMX no MX = %v", network, err)
		}
		cancel()
	}
}

// TestDNSAddRRAndCNAME: zone-file records are served as written, in order,
// and a CNAME is followed for other types.
func TestDNSAddRRAndCNAME(t *testing.T) {
	d := StartDNS(t)
	d.AddRR(
		"example.test. 300 IN MX 20 mx2.example.test.",
		"example.test. 300 IN MX 10 MXA.example.test.",
		`example.test. 300 IN TXT "v=spf1 " "-all"`,
		"alias.test. 300 IN CNAME example.test.",
		"dangling.test. 300 IN CNAME nowhere.test.",
	)
	d.SetA("example.test", "192.0.2.1")

	r := query(t, d, "udp", "example.test", dns.TypeMX, false)
	if len(r.Answer) != 2 || r.Answer[0].(*dns.MX).Mx != "mx2.example.test." || r.Answer[1].(*dns.MX).Mx != "MXA.example.test." {
		t.Fatalf("MX not as added: %v", r)
	}
	r = query(t, d, "udp", "example.test", dns.TypeTXT, false)
	if len(r.Answer) != 1 || strings.Join(r.Answer[0].(*dns.TXT).Txt, "|") != "v=spf1 |-all" {
		t.Fatalf("TXT: %v", r)
	}

	r = query(t, d, "udp", "Alias.test", dns.TypeMX, false)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 3 {
		t.Fatalf("MX via CNAME: %v", r)
	}
	if c, ok := r.Answer[0].(*dns.CNAME); !ok || c.Hdr.Name != "Alias.test." || c.Target != "example.test." {
		t.Fatalf("MX via CNAME: first record %v", r.Answer[0])
	}
	r = query(t, d, "udp", "alias.test", dns.TypeCNAME, false)
	if len(r.Answer) != 1 || r.Answer[0].(*dns.CNAME).Target != "example.test." {
		t.Fatalf("CNAME: %v", r)
	}
	if r := query(t, d, "udp", "dangling.test", dns.TypeA, false); r.Rcode != dns.RcodeNameError || len(r.Answer) != 1 {
		t.Fatalf("A via dangling CNAME: %v", r)
	}
	d.Fail("example.test", dns.RcodeServerFailure)
	if r := query(t, d, "udp", "alias.test", dns.TypeA, false); r.Rcode != dns.RcodeServerFailure {
		t.Fatalf("A via CNAME to a failing name: %v", r)
	}

	// SetMX replaces the added MX records and leaves the rest.
	d.Fail("example.test", dns.RcodeSuccess)
	d.SetMX("example.test", map[string]uint16{"mx.example.test": 5})
	if r := query(t, d, "udp", "example.test", dns.TypeANY, false); len(r.Answer) != 3 {
		t.Fatalf("ANY after SetMX: %v", r)
	}

	func() {
		defer func() {
			if recover() == nil {
				t.Error("AddRR with a bad record did not panic")
			}
		}()
		d.AddRR("example.test. IN MX nope")
	}()
}

func TestDNSTruncateUDPAndQueries(t *testing.T) {
	d := StartDNS(t)
	d.SetA("host.test", "127.0.0.1")
	query(t, d, "udp", "host.test", dns.TypeA, false)
	d.TruncateUDP(true)
	r := query(t, d, "udp", "host.test", dns.TypeA, true)
	if !r.Truncated || len(r.Answer) != 0 || r.Rcode != dns.RcodeSuccess {
		t.Fatalf("UDP while truncating: %v", r)
	}
	if r := query(t, d, "tcp", "host.test", dns.TypeA, false); r.Truncated || len(r.Answer) != 1 {
		t.Fatalf("TCP while truncating: %v", r)
	}
	if udp, tcp := d.Queries(); udp != 2 || tcp != 1 {
		t.Fatalf("Queries() = %d, %d; want 2, 1", udp, tcp)
	}
	d.TruncateUDP(false)
	if r := query(t, d, "udp", "host.test", dns.TypeA, false); r.Truncated || len(r.Answer) != 1 {
		t.Fatalf("UDP after TruncateUDP(false): %v", r)
	}
}
