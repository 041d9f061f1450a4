// Command dnsd is the loopback DNS server of `make bench`, and the helper that
// adds and verifies the bench's sending domain.
//
//	dnsd serve -addr 127.0.0.1:0 -addr-file dns.addr -records records.json
//	dnsd domain -api http://127.0.0.1:PORT -key sp_live_… -name bench.test -records records.json
//
// serve answers TXT queries from the records file (a JSON object: name → list
// of values), which it re-reads when it changes; every other name is NXDOMAIN.
// It listens on UDP and TCP, same port, loopback only, so pigeonpost's
// dns.resolver never sends a query off the machine.
//
// domain creates the domain through the REST API (POST /v1/domains), writes
// the DNS records it returns into the records file, and asks pigeonpost to
// verify them (POST /v1/domains/{id}/verify). It exits 0 once the domain is
// verified; an already verified domain is left as it is.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: dnsd serve|domain [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "domain":
		err = domain(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q (serve or domain)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dnsd:", err)
		os.Exit(1)
	}
}

// ---- serve ----

type zone struct {
	path    string
	mu      sync.Mutex
	modTime time.Time
	size    int64
	records map[string][]string // lower-case FQDN → TXT values
}

// lookup returns the TXT values of name and whether the name exists.
func (z *zone) lookup(name string) ([]string, bool) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if fi, err := os.Stat(z.path); err == nil && (!fi.ModTime().Equal(z.modTime) || fi.Size() != z.size) {
		if b, err := os.ReadFile(z.path); err == nil {
			var m map[string][]string
			if json.Unmarshal(b, &m) == nil {
				z.records = map[string][]string{}
				for k, v := range m {
					z.records[strings.ToLower(dns.Fqdn(k))] = v
				}
				z.modTime, z.size = fi.ModTime(), fi.Size()
			}
		}
	}
	v, ok := z.records[strings.ToLower(dns.Fqdn(name))]
	return v, ok
}

// escapeTXT escapes a raw character-string for miekg/dns, which interprets
// backslash escapes when packing TXT data.
func escapeTXT(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s)
}

func (z *zone) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative, m.RecursionAvailable = true, true
	if len(req.Question) == 1 {
		q := req.Question[0]
		values, ok := z.lookup(q.Name)
		if !ok {
			m.Rcode = dns.RcodeNameError
		} else if q.Qtype == dns.TypeTXT || q.Qtype == dns.TypeANY {
			for _, v := range values {
				var parts []string
				for len(v) > 255 { // one record, several character-strings
					parts = append(parts, escapeTXT(v[:255]))
					v = v[255:]
				}
				parts = append(parts, escapeTXT(v))
				m.Answer = append(m.Answer, &dns.TXT{
					Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60},
					Txt: parts,
				})
			}
		}
	}
	size := dns.MinMsgSize
	if _, isUDP := w.RemoteAddr().(*net.UDPAddr); !isUDP {
		size = dns.MaxMsgSize
	} else if opt := req.IsEdns0(); opt != nil {
		size = int(opt.UDPSize())
		m.SetEdns0(uint16(min(size, dns.MaxMsgSize)), false)
	}
	m.Truncate(size)
	_ = w.WriteMsg(m)
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "UDP and TCP listen address (loopback only)")
	addrFile := fs.String("addr-file", "", "write the bound address here once listening")
	records := fs.String("records", "records.json", "JSON file: name → list of TXT values")
	if err := fs.Parse(args); err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(*addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("refusing non-loopback listen address %q", *addr)
	}
	// The same port for UDP and TCP: take a UDP port, then try TCP on it.
	var pc net.PacketConn
	var ln net.Listener
	for range 20 {
		if pc, err = net.ListenPacket("udp", *addr); err != nil {
			return err
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
	}
	if err != nil {
		return fmt.Errorf("no port free for both UDP and TCP: %w", err)
	}
	z := &zone{path: *records}
	udp := &dns.Server{PacketConn: pc, Handler: z}
	tcp := &dns.Server{Listener: ln, Handler: z}
	errc := make(chan error, 2)
	go func() { errc <- udp.ActivateAndServe() }()
	go func() { errc <- tcp.ActivateAndServe() }()
	bound := pc.LocalAddr().String()
	if *addrFile != "" {
		if err := os.WriteFile(*addrFile+".tmp", []byte(bound+"\n"), 0o644); err != nil {
			return err
		}
		if err := os.Rename(*addrFile+".tmp", *addrFile); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "dnsd: pid %d serving %s on %s (udp+tcp)\n", os.Getpid(), *records, bound)
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-sig:
	case err := <-errc:
		return err
	}
	_ = udp.Shutdown()
	_ = tcp.Shutdown()
	return nil
}

// ---- domain ----

type dnsRecord struct {
	Type  string `json:"type"`
	Name  string `json:"name"`
	Value string `json:"value"`
}

type domainRec struct {
	ID         string      `json:"id"`
	Name       string      `json:"name"`
	Status     string      `json:"status"`
	DNSRecords []dnsRecord `json:"dnsRecords"`
}

func call(client *http.Client, method, url, key string, body any, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, bytes.TrimSpace(raw))
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %w", method, url, err)
		}
	}
	return resp.StatusCode, nil
}

func domain(args []string) error {
	fs := flag.NewFlagSet("domain", flag.ContinueOnError)
	api := fs.String("api", "", "pigeonpost HTTP base URL, e.g. http://127.0.0.1:8080")
	key := fs.String("key", "", "API key with full permission")
	name := fs.String("name", "bench.test", "sending domain")
	records := fs.String("records", "records.json", "records file of `dnsd serve`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *api == "" || *key == "" {
		return errors.New("domain: -api and -key are required")
	}
	client := &http.Client{Timeout: 30 * time.Second}
	var list struct {
		Data []domainRec `json:"data"`
	}
	if _, err := call(client, "GET", *api+"/v1/domains", *key, nil, &list); err != nil {
		return err
	}
	var d *domainRec
	for i := range list.Data {
		if list.Data[i].Name == *name {
			d = &list.Data[i]
		}
	}
	if d != nil && d.Status == "verified" {
		fmt.Printf("domain %s (%s) already verified\n", d.Name, d.ID)
		return nil
	}
	if d == nil {
		d = &domainRec{}
		if _, err := call(client, "POST", *api+"/v1/domains", *key, map[string]string{"name": *name}, d); err != nil {
			return err
		}
	}
	zone := map[string][]string{}
	for _, r := range d.DNSRecords {
		if strings.EqualFold(r.Type, "TXT") {
			zone[r.Name] = append(zone[r.Name], r.Value)
		}
	}
	b, _ := json.MarshalIndent(zone, "", "  ")
	if err := os.WriteFile(*records+".tmp", b, 0o644); err != nil {
		return err
	}
	if err := os.Rename(*records+".tmp", *records); err != nil {
		return err
	}
	var v domainRec
	if _, err := call(client, "POST", *api+"/v1/domains/"+d.ID+"/verify", *key, nil, &v); err != nil {
		return err
	}
	if v.Status != "verified" {
		return fmt.Errorf("domain %s: status %q after verify (records %s)", *name, v.Status, *records)
	}
	fmt.Printf("domain %s (%s) verified: %d TXT records published on the bench DNS\n", v.Name, v.ID, len(zone))
	return nil
}
