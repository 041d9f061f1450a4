package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-msgauth/dkim"
)

// The sends API (templates rendered per recipient, batches, the one-click
// unsubscribe), driven by curl through e2e/clients/sends_curl.sh.

const (
	// What sends_curl.sh renders for its single send (personalizations
	// first_name Zoë, order_id ORD-12345, tracking_url …/abc).
	wantSendSubject = "Order ORD-12345 has shipped, Zoë"
	wantSendText    = "Hello Zoë, your order ORD-12345 is on its way: https://track.example.com/abc"
	wantSendHTML    = "<p>Hello Zoë,</p>"
	batchSize       = 3
)

type sendAnswer struct {
	ID        string `json:"id"`
	To        string `json:"to"`
	ContactID string `json:"contactId"`
	Status    string `json:"status"`
	Error     *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

type sendRecord struct {
	ID         string  `json:"id"`
	Status     string  `json:"status"`
	ToAddress  string  `json:"toAddress"`
	TemplateID string  `json:"templateId"`
	ContactID  string  `json:"contactId"`
	BatchID    *string `json:"batchId"`
	LastError  string  `json:"lastError"`
	Events     []struct {
		Type string `json:"type"`
	} `json:"events"`
}

func (r sendRecord) eventTypes() []string {
	var out []string
	for _, e := range r.Events {
		out = append(out, e.Type)
	}
	return out
}

type batchStatus struct {
	ID         string         `json:"id"`
	TemplateID string         `json:"templateId"`
	Total      int            `json:"total"`
	InProgress bool           `json:"inProgress"`
	Counts     map[string]int `json:"counts"`
}

// sendsStep runs one step of the curl snippet and decodes its JSON answer
// into out.
func (e *env) sendsStep(ctx context.Context, c client, step string, vars map[string]string, out any) error {
	env := map[string]string{"API_URL": "http://" + e.addrs.HTTP, "API_KEY": ppLiveKey, "SENDS_STEP": step}
	for k, v := range vars {
		env[k] = v
	}
	r := runClient(ctx, e.root, e.logDir, c.name+"-"+step, c, env, clientTimeout)
	if r.exitErr != nil {
		return clientFailure(r)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(r.output)), out); err != nil {
		return fmt.Errorf("%s: not the JSON answer: %v (transcript in %s):\n%s", step, err, r.logFile, truncate(r.output, 600))
	}
	return nil
}

// ppLiveKey is the e2e key as Pigeon Perch spells it: pp_live_ for sp_live_.
var ppLiveKey = "pp_live_" + strings.TrimPrefix(apiKey, "sp_live_")

// pollSends runs a read step until ok or timeout (the gateway delivers in
// the background), and returns the last error.
func (e *env) pollSends(ctx context.Context, c client, step string, vars map[string]string, out any, ok func() error) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := e.sendsStep(ctx, c, step, vars, out)
		if err == nil {
			if err = ok(); err == nil {
				return nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
		}
	}
}

// sendsAPI drives the sends API with c from start to end.
func (e *env) sendsAPI(ctx context.Context, c client) {
	label := c.name
	rcpt := c.name + "@" + rcptDomain

	var tpl struct {
		ID string `json:"id"`
	}
	err := e.sendsStep(ctx, c, "template", map[string]string{"MAIL_FROM": sender}, &tpl)
	if err == nil && tpl.ID == "" {
		err = errors.New("no template id in the answer")
	}
	if !e.rep.check(label+": POST /api/v1/templates with {{tokens}}", tpl.ID, err) {
		return
	}

	// One send, with the key as Pigeon Perch spells it, to a new address.
	var one sendAnswer
	err = e.sendsStep(ctx, c, "send", map[string]string{"TEMPLATE_ID": tpl.ID, "MAIL_TO": rcpt}, &one)
	if err == nil && (!emailIDPattern.MatchString(one.ID) || !strings.HasPrefix(one.ContactID, "ct_") || one.Error != nil || one.Status != "sent") {
		err = fmt.Errorf("answer %+v, want an em_ id, a new ct_ contact and status sent", one)
	}
	if !e.rep.check(label+": POST /api/v1/sends with X-API-Key: pp_live_…, personalizations, a new address",
		fmt.Sprintf("%s, contact %s, status %s", one.ID, one.ContactID, one.Status), err) {
		return
	}
	e.sent = append(e.sent, rcpt)
	got := waitTo(ctx, e.sink, rcpt, 30*time.Second)
	if !e.rep.check(label+": the send delivered exactly once to the sink", envelopeDetail(got), func() error {
		if len(got) != 1 {
			return fmt.Errorf("the sink received %d messages for %s, want 1", len(got), rcpt)
		}
		if got[0].From != sender {
			return fmt.Errorf("MAIL FROM:<%s>, want <%s>", got[0].From, sender)
		}
		return nil
	}()) {
		return
	}
	raw := got[0].Data
	unsubscribe, err := checkSendMessage(raw)
	e.rep.check(label+": subject and body rendered with the personalizations, List-Unsubscribe and List-Unsubscribe-Post",
		wantSendSubject, err)
	e.rep.check(label+": DKIM signature valid, h= covering List-Unsubscribe and List-Unsubscribe-Post", "d="+senderDomain,
		e.checkSendDKIM(raw))
	e.rep.check(label+": DKIM signature valid for dkimpy", "", e.checkDkimpy(raw))

	var rec sendRecord
	err = e.pollSends(ctx, c, "send-status", map[string]string{"SEND_ID": one.ID}, &rec, func() error {
		if rec.Status != "delivered" || !slices.Contains(rec.eventTypes(), "delivered") {
			return fmt.Errorf("status %q, events %v (lastError %q)", rec.Status, rec.eventTypes(), rec.LastError)
		}
		if rec.ID != one.ID || !strings.EqualFold(rec.ToAddress, rcpt) || rec.TemplateID != tpl.ID || rec.ContactID != one.ContactID || rec.BatchID != nil {
			return fmt.Errorf("send %+v", rec)
		}
		return nil
	})
	e.rep.check(label+": GET /api/v1/sends/:id delivered, with its template, contact and events",
		"events "+strings.Join(rec.eventTypes(), ", "), err)

	// A batch.
	var rcpts []string
	for i := 1; i <= batchSize; i++ {
		rcpts = append(rcpts, fmt.Sprintf("%s-batch-%d@%s", c.name, i, rcptDomain))
	}
	var batch struct {
		BatchID string       `json:"batchId"`
		Data    []sendAnswer `json:"data"`
	}
	err = e.sendsStep(ctx, c, "batch", map[string]string{"TEMPLATE_ID": tpl.ID, "MAIL_TO": strings.Join(rcpts, " ")}, &batch)
	if err == nil {
		err = checkBatchAnswer(batch.BatchID, batch.Data, rcpts)
	}
	if !e.rep.check(label+": POST /api/v1/sends/batch", fmt.Sprintf("%s, %d recipients", batch.BatchID, len(batch.Data)), err) {
		return
	}
	e.sent = append(e.sent, rcpts...)
	var problems []string
	for i, r := range rcpts {
		got := waitTo(ctx, e.sink, r, 30*time.Second)
		if len(got) != 1 {
			problems = append(problems, fmt.Sprintf("%s: %d messages at the sink", r, len(got)))
			continue
		}
		m, err := mail.CreateReader(bytes.NewReader(got[0].Data))
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", r, err))
			continue
		}
		subject, _ := m.Header.Subject()
		if want := fmt.Sprintf("Order ORD-B%d has shipped, Reader %d", i+1, i+1); subject != want {
			problems = append(problems, fmt.Sprintf("%s: subject %q, want %q", r, subject, want))
		}
	}
	e.rep.check(label+": the batch delivered, each recipient once with its own personalizations", "", joinProblems(problems))
	var bs batchStatus
	err = e.pollSends(ctx, c, "batch-status", map[string]string{"BATCH_ID": batch.BatchID}, &bs, func() error {
		if bs.ID != batch.BatchID || bs.TemplateID != tpl.ID || bs.Total != batchSize || bs.InProgress || bs.Counts["delivered"] != batchSize {
			return fmt.Errorf("batch %+v, want %d delivered", bs, batchSize)
		}
		return nil
	})
	e.rep.check(label+": GET /api/v1/batches/:id counts the batch delivered", fmt.Sprintf("total %d, counts %v", bs.Total, bs.Counts), err)

	// The one-click unsubscribe, as a mail client posts it, to the link's
	// path on this gateway (public_url names a host that does not exist).
	if unsubscribe == "" {
		e.rep.fail(label+": one-click unsubscribe", errors.New("no https link in List-Unsubscribe"))
		return
	}
	u, err := url.Parse(unsubscribe)
	if err != nil {
		e.rep.fail(label+": one-click unsubscribe", err)
		return
	}
	u.Scheme, u.Host = "http", e.addrs.HTTP
	err = e.sendsStep(ctx, c, "unsubscribe", map[string]string{"UNSUBSCRIBE_URL": u.String()}, nil)
	if err == nil {
		err = e.sendsStep(ctx, c, "send-status", map[string]string{"SEND_ID": one.ID}, &rec)
		if err == nil && !slices.Contains(rec.eventTypes(), "unsubscribed") {
			err = fmt.Errorf("events of the send %v, want unsubscribed among them", rec.eventTypes())
		}
	}
	e.rep.check(label+": one-click POST to the List-Unsubscribe URL", "events "+strings.Join(rec.eventTypes(), ", "), err)

	var again sendAnswer
	err = e.sendsStep(ctx, c, "send", map[string]string{"TEMPLATE_ID": tpl.ID, "MAIL_TO": one.ContactID}, &again)
	if err == nil && (again.Status != "suppressed" || again.ID == "" || again.ContactID != one.ContactID) {
		err = fmt.Errorf("answer %+v, want status suppressed for contact %s", again, one.ContactID)
	}
	if err == nil {
		err = e.sendsStep(ctx, c, "send-status", map[string]string{"SEND_ID": again.ID}, &rec)
		if err == nil && rec.Status != "suppressed" {
			err = fmt.Errorf("GET /api/v1/sends/%s: status %q", again.ID, rec.Status)
		}
	}
	// Not delivered: noStrays finds exactly one message for rcpt at the end.
	e.rep.check(label+": the next send to the unsubscribed contact is suppressed", again.ID+": "+rec.LastError, err)
}

// checkSendMessage checks the rendered message of the single send and
// returns the https link of its List-Unsubscribe header.
func checkSendMessage(raw []byte) (link string, err error) {
	mr, err := mail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		return "", err
	}
	var problems []string
	if subject, err := mr.Header.Subject(); err != nil || subject != wantSendSubject {
		problems = append(problems, fmt.Sprintf("Subject %q (%v), want %q", subject, err, wantSendSubject))
	}
	var text, html string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", err
		}
		b, err := io.ReadAll(p.Body)
		if err != nil {
			return "", err
		}
		if h, ok := p.Header.(*mail.InlineHeader); ok {
			switch ct, _, _ := h.ContentType(); ct {
			case "text/plain":
				text += string(b)
			case "text/html":
				html += string(b)
			}
		}
	}
	if !strings.Contains(text, wantSendText) {
		problems = append(problems, fmt.Sprintf("text part %q, want %q in it", truncate(text, 300), wantSendText))
	}
	if !strings.Contains(html, wantSendHTML) {
		problems = append(problems, fmt.Sprintf("HTML part %q, want %q in it", truncate(html, 300), wantSendHTML))
	}
	// One https URI (RFC 8058); the mailto comes with smtp.mailbox_listen, off here.
	lu := mr.Header.Get("List-Unsubscribe")
	link = strings.Trim(lu, "<>")
	if !strings.HasPrefix(lu, "<"+publicURL+"/") || strings.Contains(link, ",") {
		problems = append(problems, fmt.Sprintf("List-Unsubscribe %q, want one https link on %s", lu, publicURL))
	}
	if got := mr.Header.Get("List-Unsubscribe-Post"); got != "List-Unsubscribe=One-Click" {
		problems = append(problems, fmt.Sprintf("List-Unsubscribe-Post %q", got))
	}
	return link, joinProblems(problems)
}

// checkSendDKIM wants a valid signature of the sending domain whose h=
// covers From and both List-Unsubscribe fields (RFC 8058 section 4).
func (e *env) checkSendDKIM(raw []byte) error {
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(raw), &dkim.VerifyOptions{LookupTXT: e.dns.lookupTXT})
	if err != nil {
		return err
	}
	var seen []string
	for _, v := range vs {
		if v.Err == nil && v.Domain == senderDomain && containsFold(v.HeaderKeys, "From") &&
			containsFold(v.HeaderKeys, "List-Unsubscribe") && containsFold(v.HeaderKeys, "List-Unsubscribe-Post") {
			return nil
		}
		seen = append(seen, fmt.Sprintf("d=%s h=%s: %v", v.Domain, strings.Join(v.HeaderKeys, ":"), v.Err))
	}
	if len(seen) == 0 {
		return errors.New("no DKIM-Signature header")
	}
	return fmt.Errorf("no valid signature of d=%s covering From, List-Unsubscribe and List-Unsubscribe-Post: %s",
		senderDomain, strings.Join(seen, "; "))
}

func checkBatchAnswer(batchID string, data []sendAnswer, rcpts []string) error {
	if !strings.HasPrefix(batchID, "bat_") || len(data) != len(rcpts) {
		return fmt.Errorf("batch %q with %d answers, want %d", batchID, len(data), len(rcpts))
	}
	var problems []string
	for i, a := range data {
		if a.Error != nil || !emailIDPattern.MatchString(a.ID) || !strings.EqualFold(a.To, rcpts[i]) || !strings.HasPrefix(a.ContactID, "ct_") {
			problems = append(problems, fmt.Sprintf("recipient %d: %+v", i, a))
		}
	}
	return joinProblems(problems)
}

func joinProblems(problems []string) error {
	if len(problems) == 0 {
		return nil
	}
	return errors.New(strings.Join(problems, "\n"))
}
