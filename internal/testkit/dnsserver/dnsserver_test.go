package dnsserver

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func txt(t *testing.T, addr, name string) (rcode int, values []string) {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
	resp, _, err := (&dns.Client{Net: "tcp", Timeout: 5 * time.Second}).Exchange(m, addr)
	if err != nil {
		t.Fatal(err)
	}
	for _, rr := range resp.Answer {
		values = append(values, strings.Join(rr.(*dns.TXT).Txt, ""))
	}
	return resp.Rcode, values
}

// TestUpdateRefreshAddTXTClear: what e2e/driver and bench/dnsd use beyond
// testkit's setters (those are tested through testkit.DNS).
func TestUpdateRefreshAddTXTClear(t *testing.T) {
	var generation atomic.Int32
	var served int32
	srv, err := Start(Options{Refresh: func(s *Server) {
		// bench/dnsd's pattern: replace everything when the source changed.
		if g := generation.Load(); g != served {
			served = g
			s.Update(func(z *Zone) {
				z.Clear()
				z.SetTXT("gen.test", strings.Repeat("g", int(g)))
			})
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	srv.Update(func(z *Zone) {
		z.AddTXT("Example.test", "v=spf1 -all")
		z.AddTXT("example.test.", "token", strings.Repeat("k", 300))
	})
	rcode, got := txt(t, srv.Addr(), "example.test")
	if rcode != dns.RcodeSuccess || len(got) != 3 || got[0] != "v=spf1 -all" || got[1] != "token" || got[2] != strings.Repeat("k", 300) {
		t.Fatalf("rcode %d, TXT %q", rcode, got)
	}

	generation.Store(2)
	if rcode, got := txt(t, srv.Addr(), "gen.test"); rcode != dns.RcodeSuccess || len(got) != 1 || got[0] != "gg" {
		t.Fatalf("after refresh: rcode %d, TXT %q", rcode, got)
	}
	if rcode, _ := txt(t, srv.Addr(), "example.test"); rcode != dns.RcodeNameError {
		t.Fatalf("cleared name: rcode %d, want NXDOMAIN", rcode)
	}
}

// TestSetAInTurn: each A query gets the next address, the last one from
// then on; AAAA queries count on their own; SetA ends the turns.
func TestSetAInTurn(t *testing.T) {
	srv, err := Start(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	query := func(qtype uint16) []string {
		t.Helper()
		m := new(dns.Msg)
		m.SetQuestion("files.attacker.test.", qtype)
		resp, _, err := (&dns.Client{Net: "tcp", Timeout: 5 * time.Second}).Exchange(m, srv.Addr())
		if err != nil || resp.Rcode != dns.RcodeSuccess {
			t.Fatalf("query: %v %v", resp, err)
		}
		var got []string
		for _, rr := range resp.Answer {
			switch rr := rr.(type) {
			case *dns.A:
				got = append(got, rr.A.String())
			case *dns.AAAA:
				got = append(got, rr.AAAA.String())
			}
		}
		return got
	}
	srv.Update(func(z *Zone) { z.SetAInTurn("files.attacker.test", "127.0.0.2", "::2", "127.0.0.1") })
	for i, want := range []string{"127.0.0.2", "", "127.0.0.1", "127.0.0.1"} {
		if got := strings.Join(query(dns.TypeA), ","); got != want {
			t.Errorf("A query %d: %q, want %q", i+1, got, want)
		}
	}
	for i, want := range []string{"", "::2", ""} {
		if got := strings.Join(query(dns.TypeAAAA), ","); got != want {
			t.Errorf("AAAA query %d: %q, want %q", i+1, got, want)
		}
	}
	srv.Update(func(z *Zone) { z.SetA("files.attacker.test", "127.0.0.3") })
	for range 2 {
		if got := strings.Join(query(dns.TypeA), ","); got != "127.0.0.3" {
			t.Errorf("after SetA: %q", got)
		}
	}
}
