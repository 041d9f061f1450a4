package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// dashboardTimeout bounds the whole browser run: start, every step, stop.
const dashboardTimeout = 3 * time.Minute

// dashboard runs the browser check of the dashboard (e2e/clients/dashboard.mjs):
// each step it prints ("ok   …") is a check line here; it sends one message
// over SMTP, which must reach the sink once.
func (e *env) dashboard(ctx context.Context, c client) {
	rcpt := c.name + "@" + rcptDomain
	cenv := e.clientEnv("starttls", apiKey, sender, rcpt)
	cenv["DASHBOARD_URL"] = "http://" + e.addrs.HTTP
	cenv["CHROMIUM"] = chromiumPath()
	cenv["SCREENSHOTS"] = filepath.Join(e.logDir, "screenshots")
	r := runClient(ctx, e.root, e.logDir, c.name, c, cenv, dashboardTimeout)
	if ctx.Err() != nil {
		return
	}
	for _, line := range strings.Split(r.output, "\n") {
		if step, ok := strings.CutPrefix(line, "ok   "); ok {
			e.rep.pass(c.name+": "+step, "")
		}
		if addr, ok := strings.CutPrefix(line, "mailed "); ok {
			e.sent = append(e.sent, strings.TrimSpace(addr)) // the sends API's, checked once each by noStrays
		}
	}
	if strings.Contains(r.output, "send over SMTP") {
		e.sent = append(e.sent, rcpt)
	}
	if r.exitErr != nil {
		e.rep.fail(c.name, clientFailure(r))
		return
	}
	got := waitTo(ctx, e.sink, rcpt, 30*time.Second)
	e.rep.check(c.name+": the message sent during the browser run delivered once", envelopeDetail(got), func() error {
		if len(got) != 1 {
			return fmt.Errorf("the sink received %d messages for %s, want 1", len(got), rcpt)
		}
		return nil
	}())
}
