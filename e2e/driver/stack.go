package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// proc is a server process the driver started and must stop.
type proc struct {
	name string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// startProc starts args with stdout and stderr going to logPath. The child
// dies with the driver (see procattr_linux.go) even if the driver is killed.
func startProc(name, logPath string, env []string, args ...string) (*proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = env
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := &proc{name: name, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, then SIGKILL after grace.
func (p *proc) stop(grace time.Duration) {
	if p == nil || p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// logTail returns the last n lines of the process's log.
func (p *proc) logTail(n int) string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    " + strings.Join(lines, "\n    ")
}

// startRedis runs redis-server on a unix socket only (no TCP port), with
// the durability settings the README asks for.
func startRedis(ctx context.Context, work string) (*proc, string, error) {
	dir := filepath.Join(work, "redis")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", err
	}
	sock := filepath.Join(work, "redis.sock")
	p, err := startProc("redis-server", filepath.Join(work, "redis.log"), os.Environ(),
		"redis-server", "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700",
		"--dir", dir, "--appendonly", "yes", "--appendfsync", "always", "--save", "",
		"--maxmemory-policy", "noeviction", "--no-appendfsync-on-rewrite", "no", "--daemonize", "no")
	if err != nil {
		return nil, "", err
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if redisPing(sock) == nil {
			return p, sock, nil
		}
		if p.exited() || time.Now().After(deadline) || ctx.Err() != nil {
			p.stop(time.Second)
			return nil, "", fmt.Errorf("redis-server did not come up on %s:\n%s", sock, p.logTail(15))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func redisPing(sock string) error {
	c, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, "PING\r\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("PING: %q", line)
	}
	return nil
}

// boundAddrs is what `pigeonpost serve --ready-file` writes.
type boundAddrs struct {
	SMTP    string `json:"smtp"`
	SMTPTLS string `json:"smtp_tls"`
	HTTP    string `json:"http"`
}

// startGateway writes the configuration and runs bin/pigeonpost serve.
func startGateway(ctx context.Context, bin, work, config string) (*proc, boundAddrs, error) {
	var addrs boundAddrs
	cfgPath := filepath.Join(work, "pigeonpost.yaml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		return nil, addrs, err
	}
	ready := filepath.Join(work, "ready.json")
	// PIGEONPOST_* variables of the caller would override the file.
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PIGEONPOST_") {
			env = append(env, kv)
		}
	}
	p, err := startProc("pigeonpost", filepath.Join(work, "pigeonpost.log"), env,
		bin, "serve", "--config", cfgPath, "--ready-file", ready)
	if err != nil {
		return nil, addrs, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, err := os.ReadFile(ready); err == nil && json.Unmarshal(b, &addrs) == nil && addrs.HTTP != "" {
			return p, addrs, nil
		}
		if p.exited() || time.Now().After(deadline) || ctx.Err() != nil {
			p.stop(5 * time.Second)
			return nil, addrs, fmt.Errorf("pigeonpost did not become ready (%v):\n%s", p.err, p.logTail(20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// apiClient calls the gateway's REST API.
type apiClient struct {
	base string // http://127.0.0.1:port
	key  string
	http *http.Client
}

func newAPI(addr, key string) *apiClient {
	return &apiClient{base: "http://" + addr, key: key, http: &http.Client{
		Timeout: 15 * time.Second,
		// Tracking redirects point at the destination: look, do not follow.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// call sends body as JSON and decodes a JSON answer into out (when non-nil).
func (a *apiClient) call(method, path string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.base+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+a.key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, truncate(string(raw), 200))
		}
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, truncate(string(raw), 200))
	}
	return resp.StatusCode, nil
}

// get fetches a URL without the API key, as a mail client or browser with
// userAgent would.
func (a *apiClient) get(url, userAgent string) (*http.Response, []byte, error) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("User-Agent", userAgent)
	resp, err := a.http.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

type apiEmail struct {
	ID          string     `json:"id"`
	Status      string     `json:"status"`
	FromAddress string     `json:"fromAddress"`
	ToAddress   string     `json:"toAddress"`
	Subject     string     `json:"subject"`
	Attempts    int        `json:"attempts"`
	LastError   string     `json:"lastError"`
	DeliveredAt *time.Time `json:"deliveredAt"`
	ScheduledAt *time.Time `json:"scheduledAt"`
	SentAt      *time.Time `json:"sentAt"`
	OpenedAt    *time.Time `json:"openedAt"`
	ClickedAt   *time.Time `json:"clickedAt"`
}

// events returns GET /v1/emails/:id/events, shortened, for failure reports.
func (a *apiClient) events(id string) string {
	var raw json.RawMessage
	if _, err := a.call("GET", "/v1/emails/"+id+"/events", nil, &raw); err != nil {
		return err.Error()
	}
	return truncate(string(raw), 800)
}

// emailsTo lists the account's emails (newest first) addressed to rcpt.
func (a *apiClient) emailsTo(rcpt string) ([]apiEmail, error) {
	var list struct {
		Data []apiEmail `json:"data"`
	}
	if _, err := a.call("GET", "/v1/emails", nil, &list); err != nil {
		return nil, err
	}
	var out []apiEmail
	for _, e := range list.Data {
		if strings.EqualFold(e.ToAddress, rcpt) {
			out = append(out, e)
		}
	}
	return out, nil
}

// pollEmail fetches /v1/emails/:id until ok says so or timeout passes, and
// returns the last answer.
func (a *apiClient) pollEmail(ctx context.Context, id string, timeout time.Duration, ok func(apiEmail) bool) (apiEmail, error) {
	deadline := time.Now().Add(timeout)
	for {
		var e apiEmail
		_, err := a.call("GET", "/v1/emails/"+id, nil, &e)
		if err == nil && ok(e) {
			return e, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			if err == nil {
				err = errors.New("timed out")
			}
			return e, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func truncate(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
