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

	"github.com/pigeonpost/pigeonpost/internal/testkit/dnsserver"
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

// zone is the records file, re-read when it changes (checked before each
// query, so a record written just before a query is served to it).
type zone struct {
	path    string
	mu      sync.Mutex
	modTime time.Time
	size    int64
}

// refresh replaces the server's records with the file's TXT records when
// the file changed since it was last read; a file that does not read or
// parse leaves them as they are.
func (z *zone) refresh(srv *dnsserver.Server) {
	z.mu.Lock()
	defer z.mu.Unlock()
	fi, err := os.Stat(z.path)
	if err != nil || (fi.ModTime().Equal(z.modTime) && fi.Size() == z.size) {
		return
	}
	b, err := os.ReadFile(z.path)
	if err != nil {
		return
	}
	var m map[string][]string
	if json.Unmarshal(b, &m) != nil {
		return
	}
	srv.Update(func(dz *dnsserver.Zone) {
		dz.Clear()
		for name, values := range m {
			dz.SetTXT(name, values...)
		}
	})
	z.modTime, z.size = fi.ModTime(), fi.Size()
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
	z := &zone{path: *records}
	srv, err := dnsserver.Start(dnsserver.Options{Addr: *addr, Refresh: z.refresh})
	if err != nil {
		return err
	}
	defer srv.Close()
	bound := srv.Addr()
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
	case err := <-srv.Errors():
		return err
	}
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
