package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pigeonpost/pigeonpost/pipeline/webhooks"
)

// Webhooks: the gateway POSTs a signed webhook to a receiver of the
// driver's; each signature check that docs/tracking.md quotes
// (docs/webhooks/verify.*) must accept it as it came, and reject it with
// one byte of the body changed, with another secret, or signed 10 minutes
// ago. Then a replay sends the same deliveries again under their ids, and
// a redelivery one of them.

// hookRequest is one request the receiver got.
type hookRequest struct {
	header http.Header
	body   []byte
}

// hookReceiver is a webhook endpoint on 127.0.0.1 that answers 200 and
// keeps every request.
type hookReceiver struct {
	url  string
	srv  *http.Server
	mu   sync.Mutex
	got  []hookRequest
	more chan struct{} // signalled on each request
}

func startHookReceiver() (*hookReceiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &hookReceiver{url: "http://" + ln.Addr().String(), more: make(chan struct{}, 1)}
	r.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, hookRequest{header: req.Header.Clone(), body: body})
		r.mu.Unlock()
		select {
		case r.more <- struct{}{}:
		default:
		}
	})}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

func (r *hookReceiver) Close() { _ = r.srv.Close() }

func (r *hookReceiver) requests() []hookRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// wait returns the requests from the from-th on once there are n of them.
func (r *hookReceiver) wait(ctx context.Context, from, n int, timeout time.Duration) ([]hookRequest, error) {
	deadline := time.After(timeout)
	for {
		if got := r.requests(); len(got) >= from+n {
			return got[from:], nil
		}
		select {
		case <-r.more:
		case <-deadline:
			return r.requests()[from:], fmt.Errorf("%d webhook requests after %s, want %d", len(r.requests())-from, timeout, n)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func hookIDs(reqs []hookRequest) []string {
	var out []string
	for _, r := range reqs {
		out = append(out, r.header.Get(webhooks.IDHeader)+" "+r.header.Get(webhooks.EventHeader))
	}
	return out
}

func (e *env) webhooks(ctx context.Context, verifiers []client) {
	const name = "webhooks"
	recv, err := startHookReceiver()
	if err != nil {
		e.rep.fail(name+": receiver", err)
		return
	}
	defer recv.Close()
	var hook struct{ ID, Secret string }
	since := time.Now().Add(-time.Second)
	if _, err := e.api.call("POST", "/v1/webhooks", map[string]any{"url": recv.url + "/hooks", "events": []string{"email.sent", "email.delivered"}}, &hook); err != nil {
		e.rep.fail(name+": POST /v1/webhooks", err)
		return
	}
	rcpt := "webhooks@" + rcptDomain
	var sent struct{ ID string }
	if _, err := e.api.call("POST", "/v1/emails", map[string]any{"from": sender, "to": rcpt, "subject": "Webhook check", "text": "Fires email.sent and email.delivered."}, &sent); err != nil {
		e.rep.fail(name+": POST /v1/emails", err)
		return
	}
	e.sent = append(e.sent, rcpt)

	// email.sent, then email.delivered, each signed.
	first, err := recv.wait(ctx, 0, 2, 60*time.Second)
	var delivered *hookRequest
	for i, r := range first {
		if err == nil {
			err = webhooks.Verify(hook.Secret, r.header.Get(webhooks.SignatureHeader), r.body, time.Now(), webhooks.DefaultTolerance)
		}
		if r.header.Get(webhooks.EventHeader) == "email.delivered" && strings.Contains(string(r.body), sent.ID) {
			delivered = &first[i]
		}
	}
	if err == nil && delivered == nil {
		err = fmt.Errorf("no email.delivered for %s among %v", sent.ID, hookIDs(first))
	}
	if !e.rep.check(name+": the gateway POSTs signed email.sent and email.delivered", strings.Join(hookIDs(first), ", "), err) {
		return
	}

	header, body := delivered.header.Get(webhooks.SignatureHeader), delivered.body
	tampered := slices.Clone(body)
	tampered[len(tampered)/2] ^= 1
	stale := webhooks.Sign(hook.Secret, time.Now().Add(-10*time.Minute), body)
	for _, v := range verifiers {
		for i, c := range []struct {
			what, secret, header string
			body                 []byte
			valid                bool
		}{
			{"accepts the gateway's signed webhook", hook.Secret, header, body, true},
			{"rejects it with one byte of the body changed", hook.Secret, header, tampered, false},
			{"rejects it with another secret", webhooks.NewSecret(), header, body, false},
			{"rejects a signature 10 minutes old", hook.Secret, stale, body, false},
		} {
			r := runClientInput(ctx, e.root, e.logDir, fmt.Sprintf("%s-%d", v.name, i), v,
				map[string]string{"WEBHOOK_SECRET": c.secret, "WEBHOOK_SIGNATURE": c.header}, c.body, clientTimeout)
			out := strings.TrimSpace(r.output)
			var err error
			var exit *exec.ExitError
			switch {
			case c.valid && (r.exitErr != nil || out != "valid"):
				err = fmt.Errorf("%v, printed %q (log %s)", r.exitErr, truncate(out, 200), r.logFile)
			case !c.valid && (!errors.As(r.exitErr, &exit) || exit.ExitCode() != 1 || out != "invalid"):
				err = fmt.Errorf("want exit status 1 and \"invalid\": %v, printed %q (log %s)", r.exitErr, truncate(out, 200), r.logFile)
			}
			e.rep.check(v.name+": "+c.what, "", err)
		}
	}

	// A replay sends both again under their ids (in order, but several
	// webhook workers may overlap them); a redelivery, the delivered one.
	var rep struct {
		Queued    int  `json:"queued"`
		Truncated bool `json:"truncated"`
	}
	n := len(recv.requests())
	_, err = e.api.call("POST", "/v1/webhooks/"+hook.ID+"/replay", map[string]any{"since": since.UTC().Format(time.RFC3339Nano)}, &rep)
	var again []hookRequest
	if err == nil && (rep.Queued != 2 || rep.Truncated) {
		err = fmt.Errorf("answer %+v, want 2 queued", rep)
	}
	if err == nil {
		again, err = recv.wait(ctx, n, 2, 60*time.Second)
	}
	if err == nil && !slices.Equal(slices.Sorted(slices.Values(hookIDs(again))), slices.Sorted(slices.Values(hookIDs(first)))) {
		err = fmt.Errorf("replayed %v, want %v", hookIDs(again), hookIDs(first))
	}
	for _, r := range again {
		if err == nil {
			err = webhooks.Verify(hook.Secret, r.header.Get(webhooks.SignatureHeader), r.body, time.Now(), webhooks.DefaultTolerance)
		}
	}
	e.rep.check(name+": POST /v1/webhooks/:id/replay sends them again under their ids", strings.Join(hookIDs(again), ", "), err)

	id := delivered.header.Get(webhooks.IDHeader)
	n = len(recv.requests())
	_, err = e.api.call("POST", "/v1/webhooks/deliveries/"+id+"/redeliver", nil, nil)
	if err == nil {
		again, err = recv.wait(ctx, n, 1, 60*time.Second)
	}
	if err == nil && (again[0].header.Get(webhooks.IDHeader) != id || string(again[0].body) != string(body)) {
		err = fmt.Errorf("got %s %s, want %s %s", again[0].header.Get(webhooks.IDHeader), again[0].body, id, body)
	}
	e.rep.check(name+": POST /v1/webhooks/deliveries/:id/redeliver sends it again", id, err)
}
