package main

import (
	"context"
	"fmt"
	"time"
)

// Scheduling over SMTP: the X-SP-Send-At header, set by a client whose
// snippet reads SEND_AT (client.sendAt).

// sendAtLead is how far ahead the scheduled message is due: room for the
// client to send it and for the driver to see it scheduled first.
const sendAtLead = 8 * time.Second

// sendAt sends c's message with X-SP-Send-At a few seconds ahead, as an
// RFC 5322 date (what date -R prints), and checks that it is scheduled for
// that time, not delivered before it, delivered once after it without the
// header; then one more than 30 days ahead, which must be refused at DATA
// with 550 5.5.2 naming the header.
func (e *env) sendAt(ctx context.Context, c client) {
	label := c.name + " (STARTTLS): X-SP-Send-At"
	rcpt := c.name + "-sendat@" + rcptDomain
	at := time.Now().Add(sendAtLead).Truncate(time.Second)
	env := e.clientEnv("starttls", apiKey, sender, rcpt)
	env["SEND_AT"] = at.Format(time.RFC1123Z)

	r := runClient(ctx, e.root, e.logDir, c.name+"-sendat", c, env, clientTimeout)
	if ctx.Err() != nil {
		return
	}
	if r.exitErr != nil {
		e.rep.fail(label+": send", clientFailure(r))
		return
	}
	e.sent = append(e.sent, rcpt)
	id := emailIDPattern.FindString(r.output)
	var err error
	if id == "" {
		err = fmt.Errorf("no em_ id in the client's output (transcript in %s)", r.logFile)
	} else if r.elapsed >= sendAtLead {
		err = fmt.Errorf("the client took %s, longer than the %s lead: run again on a less loaded machine", r.elapsed.Round(time.Millisecond), sendAtLead)
	}
	if err == nil {
		var got apiEmail
		if _, err = e.api.call("GET", "/v1/emails/"+id, nil, &got); err == nil &&
			(got.Status != "scheduled" || got.ScheduledAt == nil || !got.ScheduledAt.Equal(at)) {
			err = fmt.Errorf("GET /v1/emails/%s: status %q, scheduledAt %v; want scheduled at %s", id, got.Status, got.ScheduledAt, at.UTC().Format(time.RFC3339))
		}
	}
	if !e.rep.check(label+": accepted, scheduled", fmt.Sprintf("%s for %s (X-SP-Send-At: %s)", id, at.UTC().Format(time.RFC3339), env["SEND_AT"]), err) {
		return
	}

	// Nothing at the sink before the time. The sink is read before the
	// clock: a message seen while the clock is still short of the time
	// was delivered early.
	for {
		early := len(e.sink.To(rcpt)) > 0
		if !time.Now().Before(at) {
			break
		}
		if early {
			err = fmt.Errorf("the sink received it before %s", at.UTC().Format(time.RFC3339))
			break
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return
		}
	}
	e.rep.check(label+": not delivered before its time", "", err)

	got := waitTo(ctx, e.sink, rcpt, 30*time.Second)
	if ctx.Err() != nil {
		return
	}
	if !e.rep.check(label+": delivered exactly once after its time", envelopeDetail(got), func() error {
		if len(got) != 1 {
			return fmt.Errorf("the sink received %d messages for %s, want 1", len(got), rcpt)
		}
		return nil
	}()) {
		return
	}
	raw := got[0].Data
	msg, err := parseMessage(raw)
	if err != nil {
		e.rep.fail(label+": MIME", fmt.Errorf("%v (message in %s)", err, got[0].File))
		return
	}
	e.rep.check(label+": X-SP-Send-At and X-SP-Track-* headers stripped", "", msg.checkStripped())
	e.rep.check(label+": DKIM signature valid", "d="+senderDomain, e.checkDKIM(raw))
	final, err := e.api.pollEmail(ctx, id, 30*time.Second, func(m apiEmail) bool { return m.Status == "delivered" })
	if err == nil && (final.SentAt == nil || final.SentAt.Before(at)) {
		err = fmt.Errorf("sentAt %v, before the scheduled %s", final.SentAt, at.UTC().Format(time.RFC3339))
	}
	if err != nil {
		err = fmt.Errorf("GET /v1/emails/%s: status %q, lastError %q: %v", id, final.Status, final.LastError, err)
	}
	e.rep.check(label+": GET /v1/emails/:id delivered, sentAt after the time", "", err)

	e.sendAtTooFar(ctx, c)
}

// sendAtTooFar checks that X-SP-Send-At more than 30 days ahead is refused
// at DATA, 550 5.5.2 naming the header, surfaced by the client quickly.
func (e *env) sendAtTooFar(ctx context.Context, c client) {
	label := c.name + " (STARTTLS): X-SP-Send-At 31 days ahead → 550 5.5.2 rejection"
	rcpt := c.name + "-sendat-far@" + rcptDomain
	e.refused = append(e.refused, rcpt)
	env := e.clientEnv("starttls", apiKey, sender, rcpt)
	env["SEND_AT"] = time.Now().Add(31 * 24 * time.Hour).UTC().Format(time.RFC3339)
	r := runClient(ctx, e.root, e.logDir, c.name+"-sendat-far", c, env, clientTimeout)
	if ctx.Err() != nil {
		return
	}
	e.rep.check(label, fmt.Sprintf("in %s: %s", r.elapsed.Round(time.Millisecond), errorLine(r.output, "550")),
		refusal(r, []string{"550", "5.5.2", "X-SP-Send-At: " + env["SEND_AT"] + " is more than 30 days ahead"}))
}
