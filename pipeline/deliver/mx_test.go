package deliver

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
)

func newTestResolver(t *testing.T) (*testkit.DNS, *Resolver) {
	t.Helper()
	srv := testkit.StartDNS(t)
	// Zone-file records, served as written: MX records out of order, a TXT
	// record of two strings.
	srv.AddRR(
		// preference order, ties by name
		"example.test. 300 IN MX 20 mx2.example.test.",
		"example.test. 300 IN MX 10 MXA.example.test.",
		"example.test. 300 IN MX 10 mx1.example.test.",
		"mx1.example.test. 300 IN A 127.0.0.1",
		"mx1.example.test. 300 IN AAAA ::1",
		// implicit MX
		"implicit.test. 300 IN A 127.0.0.1",
		// implicit MX over IPv6 only
		"v6only.test. 300 IN AAAA ::1",
		// null MX
		"null.test. 300 IN MX 0 .",
		// null MX next to a real one: misconfigured, the real one wins
		"halfnull.test. 300 IN MX 0 .",
		"halfnull.test. 300 IN MX 10 mx.halfnull.test.",
		// exists, but neither MX nor address
		"noaddr.test. 300 IN TXT \"hello\"",
		// alias
		"alias.test. 300 IN CNAME example.test.",
		// TXT
		"verify.test. 300 IN TXT \"pigeonpost-verify=abc\"",
		"verify.test. 300 IN TXT \"v=spf1 \" \"-all\"",
		"verify.test. 300 IN MX 10 mx1.example.test.",
	)
	srv.Fail("fail.test", dns.RcodeServerFailure)
	srv.Fail("refused.test", dns.RcodeRefused)
	return srv, &Resolver{Addr: srv.Addr(), Timeout: 5 * time.Second}
}

func TestLookupMX(t *testing.T) {
	_, r := newTestResolver(t)
	tests := []struct {
		domain    string
		want      []string
		temporary bool
		enhanced  [3]int // zero: success expected
	}{
		{domain: "example.test", want: []string{"mx1.example.test", "mxa.example.test", "mx2.example.test"}},
		{domain: "Example.TEST.", want: []string{"mx1.example.test", "mxa.example.test", "mx2.example.test"}},
		{domain: "alias.test", want: []string{"mx1.example.test", "mxa.example.test", "mx2.example.test"}},
		{domain: "implicit.test", want: []string{"implicit.test"}},
		{domain: "v6only.test", want: []string{"v6only.test"}},
		{domain: "halfnull.test", want: []string{"mx.halfnull.test"}},
		{domain: "null.test", enhanced: [3]int{5, 1, 10}},
		{domain: "nx.test", enhanced: [3]int{5, 1, 2}},
		{domain: "noaddr.test", enhanced: [3]int{5, 1, 2}},
		{domain: "fail.test", temporary: true, enhanced: [3]int{4, 4, 3}},
		{domain: "refused.test", temporary: true, enhanced: [3]int{4, 4, 3}},
		{domain: "bad..name", enhanced: [3]int{5, 1, 2}},
		{domain: "", enhanced: [3]int{5, 1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.domain, func(t *testing.T) {
			got, err := r.LookupMX(context.Background(), tt.domain)
			if tt.enhanced == ([3]int{}) {
				if err != nil {
					t.Fatalf("LookupMX: %v", err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("LookupMX = %q, want %q", got, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("LookupMX = %q, want error", got)
			}
			e := asError(t, err)
			if e.Temporary != tt.temporary || e.Enhanced != tt.enhanced || e.Code != 0 {
				t.Fatalf("error %+v: want temporary=%v enhanced=%v code 0", e, tt.temporary, tt.enhanced)
			}
			if e.Message == "" {
				t.Fatal("empty Message")
			}
		})
	}
}

func TestLookupTXT(t *testing.T) {
	srv, r := newTestResolver(t)
	ctx := context.Background()

	got, err := r.LookupTXT(ctx, "verify.test")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"pigeonpost-verify=abc", "v=spf1 -all"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("LookupTXT = %q, want %q", got, want)
	}

	// NODATA: no records, no error.
	got, err = r.LookupTXT(ctx, "implicit.test")
	if err != nil || len(got) != 0 {
		t.Fatalf("LookupTXT(no TXT) = %q, %v; want none", got, err)
	}

	_, err = r.LookupTXT(ctx, "nx.test")
	if e := asError(t, err); e.Temporary || e.Enhanced != [3]int{5, 1, 2} {
		t.Fatalf("NXDOMAIN: %+v", e)
	}
	_, err = r.LookupTXT(ctx, "fail.test")
	if e := asError(t, err); !e.Temporary || e.Enhanced != [3]int{4, 4, 3} {
		t.Fatalf("SERVFAIL: %+v", e)
	}

	// Truncated UDP answer: retried over TCP.
	srv.TruncateUDP(true)
	got, err = r.LookupTXT(ctx, "verify.test")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("LookupTXT over TCP = %q, want %q", got, want)
	}
	if _, tcp := srv.Queries(); tcp != 1 {
		t.Fatalf("TCP queries = %d, want 1", tcp)
	}
}

func TestLookupHost(t *testing.T) {
	_, r := newTestResolver(t)
	ctx := context.Background()
	tests := []struct {
		host string
		want []string
		err  [3]int
	}{
		{host: "mx1.example.test", want: []string{"127.0.0.1", "::1"}},
		{host: "v6only.test", want: []string{"::1"}},
		{host: "192.0.2.1", want: []string{"192.0.2.1"}},
		{host: "[IPv6:2001:db8::1]", want: []string{"2001:db8::1"}},
		{host: "nx.test", err: [3]int{5, 1, 2}},
		{host: "noaddr.test", err: [3]int{5, 1, 2}},
		{host: "fail.test", err: [3]int{4, 4, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			got, err := r.LookupHost(ctx, tt.host)
			if tt.err != ([3]int{}) {
				e := asError(t, err)
				if e.Enhanced != tt.err || e.Temporary != (tt.err[0] == 4) {
					t.Fatalf("error %+v, want %v", e, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("LookupHost = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestResolverNetworkErrors(t *testing.T) {
	ctx := context.Background()

	// A server that never answers: the query times out.
	silent, asked := silentUDP(t)
	r := &Resolver{Addr: silent, Timeout: 100 * time.Millisecond}
	_, err := r.LookupMX(ctx, "example.test")
	if e := asError(t, err); !e.Temporary || e.Enhanced != [3]int{4, 4, 3} || e.Err == nil {
		t.Fatalf("timeout: %+v", e)
	}
	<-asked

	// Cancelling the context ends a pending query (long before Timeout).
	r = &Resolver{Addr: silent, Timeout: 10 * time.Minute}
	cctx, cancel := context.WithCancel(ctx)
	go func() {
		<-asked
		cancel()
	}()
	_, err = r.LookupTXT(cctx, "verify.test")
	if e := asError(t, err); !e.Temporary || e.Enhanced != [3]int{4, 4, 3} || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled mid-query: %+v", e)
	}

	// An already cancelled context.
	_, r = newTestResolver(t)
	_, err = r.LookupTXT(cctx, "verify.test")
	if e := asError(t, err); !e.Temporary || e.Enhanced != [3]int{4, 4, 3} {
		t.Fatalf("cancelled: %+v", e)
	}
}

func TestUnescapeTXT(t *testing.T) {
	for in, want := range map[string]string{
		`plain`:        "plain",
		`a\"b`:         `a"b`,
		`back\\slash`:  `back\slash`,
		`tab\009x`:     "tab\tx",
		`trailing\`:    `trailing\`,
		`\255\0001`:    "\xff\x001",
		`not\9digits`:  "not9digits",
		`semi\;colon`:  "semi;colon",
		`high\256more`: "high256more",
	} {
		if got := unescapeTXT(in); got != want {
			t.Errorf("unescapeTXT(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestNetResolver: the standard library's resolver for the clients that
// dial by name asks the configured server; none is configured → nil (the
// system's).
func TestNetResolver(t *testing.T) {
	if (&Resolver{}).NetResolver() != nil {
		t.Error("no server configured, yet a resolver")
	}
	_, r := newTestResolver(t)
	addrs, err := r.NetResolver().LookupHost(context.Background(), "mx1.example.test")
	slices.Sort(addrs)
	if err != nil || !slices.Equal(addrs, []string{"127.0.0.1", "::1"}) {
		t.Fatalf("LookupHost: %v %v", addrs, err)
	}
}
