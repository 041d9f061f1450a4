package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-msgauth/dkim"
)

// env is what the per-client checks share.
type env struct {
	rep  *report
	api  *apiClient
	sink *sink
	// rehearsal takes each message from the client first, as it left the
	// client, to compare with what pigeonpost delivered.
	rehearsal *sink
	dns       *dnsServer
	addrs     boundAddrs
	root      string
	logDir    string

	sent    []string // recipients of accepted sends
	refused []string // recipients of sends that had to be refused
	reads   []pendingRead
}

func (e *env) port(mode string) (host, port string) {
	addr := e.addrs.SMTP
	if mode == "tls" {
		addr = e.addrs.SMTPTLS
	}
	i := strings.LastIndexByte(addr, ':')
	return addr[:i], addr[i+1:]
}

func (e *env) clientEnv(mode, key, from, to string) map[string]string {
	host, port := e.port(mode)
	return map[string]string{
		"SMTP_HOST": host, "SMTP_PORT": port, "SMTP_SECURITY": mode, "SMTP_API_KEY": key,
		"MAIL_FROM": from, "MAIL_TO": to,
		"ATTACHMENT": filepath.Join(e.root, "e2e/fixtures/invoice.pdf"),
	}
}

func modeLabel(mode string) string {
	if mode == "tls" {
		return "implicit TLS"
	}
	return "STARTTLS"
}

// positive sends one message with c and checks everything about it.
func (e *env) positive(ctx context.Context, c client, mode string) {
	label := c.name + " (" + modeLabel(mode) + ")"
	rcpt := c.name + "-" + mode + "@" + rcptDomain

	// Rehearsal: the same client and settings against a stand-in server.
	renv := e.clientEnv(mode, apiKey, sender, rcpt)
	renv["SMTP_PORT"] = fmt.Sprint(e.rehearsal.Port())
	if mode == "tls" {
		renv["SMTP_PORT"] = fmt.Sprint(e.rehearsal.TLSPort())
	}
	var original []byte
	rr := runClient(ctx, e.root, e.logDir, c.name+"-"+mode+"-rehearsal", c, renv, clientTimeout)
	if ctx.Err() != nil {
		return // interrupted: reported once by the caller
	}
	if rr.exitErr != nil {
		e.rep.fail(label+": rehearsal without pigeonpost", clientFailure(rr))
	} else if got := e.rehearsal.To(rcpt); len(got) != 1 {
		e.rep.fail(label+": rehearsal without pigeonpost", fmt.Errorf("the stand-in server got %d messages", len(got)))
	} else {
		original = got[0].Data
	}

	r := runClient(ctx, e.root, e.logDir, c.name+"-"+mode, c, e.clientEnv(mode, apiKey, sender, rcpt), clientTimeout)
	if ctx.Err() != nil {
		return
	}
	if r.exitErr != nil {
		e.rep.fail(label+": send", clientFailure(r))
		return
	}
	e.sent = append(e.sent, rcpt)

	// The email id: from the reply to the final dot when the client shows
	// it, else from GET /v1/emails (newest first) by recipient.
	id := emailIDPattern.FindString(r.output)
	source := "from the client's output"
	listed, err := e.api.emailsTo(rcpt)
	if err == nil && len(listed) != 1 {
		err = fmt.Errorf("GET /v1/emails lists %d emails to %s, want 1", len(listed), rcpt)
	}
	if err == nil && id != "" && listed[0].ID != id {
		err = fmt.Errorf("the client was told %s but the API lists %s", id, listed[0].ID)
	}
	if err == nil && id == "" {
		id, source = listed[0].ID, "from GET /v1/emails"
	}
	if !e.rep.check(label+": accepted, one email queued", fmt.Sprintf("%s (%s, %s)", id, source, r.elapsed.Round(time.Millisecond)), err) {
		return
	}

	got := waitTo(ctx, e.sink, rcpt, 30*time.Second)
	if ctx.Err() != nil {
		return
	}
	if !e.rep.check(label+": delivered exactly once to the sink", envelopeDetail(got), func() error {
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
	msg, err := parseMessage(raw)
	if err != nil {
		e.rep.fail(label+": MIME", fmt.Errorf("%v (message in %s)", err, got[0].File))
		return
	}
	e.rep.check(label+": From, To and Subject decoded", "", msg.checkHeaders(rcpt))
	e.rep.check(label+": X-SP-Track-* headers stripped", "", msg.checkStripped())
	if original != nil {
		n, err := compareWithOriginal(original, raw)
		e.rep.check(label+": every other header and MIME part as the client sent them", n, err)
	}
	e.rep.check(label+": attachment invoice.pdf intact", fmt.Sprintf("%d bytes", len(msg.attachment)), msg.checkAttachment(e.root))
	e.rep.check(label+": DKIM signature valid", "d="+senderDomain, e.checkDKIM(raw))
	e.rep.check(label+": DKIM signature valid for dkimpy", "", e.checkDkimpy(raw))
	pixel, perr := msg.pixel(id)
	e.rep.check(label+": open pixel in the HTML", "", perr)
	link, lerr := msg.link()
	e.rep.check(label+": link rewritten to /v1/track/click/", "", lerr)
	final, err := e.api.pollEmail(ctx, id, 30*time.Second, func(m apiEmail) bool { return m.Status == "delivered" })
	if err == nil && !strings.EqualFold(final.ToAddress, rcpt) {
		err = fmt.Errorf("toAddress %q", final.ToAddress)
	}
	if err != nil {
		err = fmt.Errorf("GET /v1/emails/%s: status %q, attempts %d, lastError %q: %v", id, final.Status, final.Attempts, final.LastError, err)
	}
	if e.rep.check(label+": GET /v1/emails/:id status delivered", "", err) && perr == nil && lerr == nil {
		e.reads = append(e.reads, pendingRead{label: label, id: id, pixel: pixel, link: link, delivered: final.DeliveredAt})
	}
}

// pendingRead is a delivered message whose pixel and link are fetched at
// the end, as a person reading it would.
type pendingRead struct {
	label, id, pixel, link string
	delivered              *time.Time
}

// Hits this soon after delivery are taken for a security gateway's prefetch
// and not counted (tracking.bot_window, 3s by default): a person opens the
// mail later than that.
const readDelay = 4 * time.Second

// Browser-like agents: HTTP libraries' own agents are filtered as bots.
const (
	mailClientAgent = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.5.0"
	browserAgent    = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
)

// readAll opens each delivered message and clicks its link, then checks
// that GET /v1/emails/:id counts the open and the click.
func (e *env) readAll(ctx context.Context) {
	for _, r := range e.reads {
		if r.delivered != nil {
			if d := time.Until(r.delivered.Add(readDelay)); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return
				}
			}
		}
		e.rep.check(r.label+": open pixel answers a GIF", "", e.fetchPixel(r.pixel))
		e.rep.check(r.label+": click redirects to the original link", wantLink, e.fetchLink(r.link))
		got, err := e.api.pollEmail(ctx, r.id, 3*time.Second, func(m apiEmail) bool { return m.OpenedAt != nil && m.ClickedAt != nil })
		if err != nil {
			err = fmt.Errorf("GET /v1/emails/%s: openedAt %v, clickedAt %v (%v); events: %s",
				r.id, got.OpenedAt != nil, got.ClickedAt != nil, err, e.api.events(r.id))
		}
		e.rep.check(r.label+": GET /v1/emails/:id counts the open and the click", "", err)
	}
}

// negative checks that a wrong key and an unverified sender are refused
// with the right reply, surfaced by the library, quickly.
func (e *env) negative(ctx context.Context, c client) {
	cases := []struct {
		slug, what, key, from, want string
		codes                       []string
	}{
		{"badkey", "wrong API key", wrongKey, sender, "535 authentication error", []string{"535"}},
		{"unverified", "unverified sender domain", apiKey, unverified, "550 5.7.1 rejection", []string{"550", "5.7.1"}},
	}
	for _, tc := range cases {
		label := fmt.Sprintf("%s (STARTTLS): %s → %s", c.name, tc.what, tc.want)
		slug := tc.slug
		rcpt := c.name + "-" + slug + "@" + rcptDomain
		e.refused = append(e.refused, rcpt)
		r := runClient(ctx, e.root, e.logDir, c.name+"-"+slug, c, e.clientEnv("starttls", tc.key, tc.from, rcpt), clientTimeout)
		if ctx.Err() != nil {
			return
		}
		e.rep.check(label, fmt.Sprintf("in %s: %s", r.elapsed.Round(time.Millisecond), errorLine(r.output, tc.codes[0])), refusal(r, tc.codes))
	}
}

// refusal checks the run of a client that must be refused: it failed,
// quickly, and its error shows every one of wants.
func refusal(r clientRun, wants []string) error {
	switch {
	case r.timedOut:
		return fmt.Errorf("the client hung: killed after %s (transcript in %s)", clientTimeout, r.logFile)
	case r.exitErr == nil:
		return fmt.Errorf("the client reported success (transcript in %s):\n%s", r.logFile, truncate(r.output, 400))
	case r.elapsed > negativeMaxTime:
		return fmt.Errorf("the error took %s (transcript in %s)", r.elapsed.Round(time.Millisecond), r.logFile)
	}
	for _, want := range wants {
		if !strings.Contains(r.output, want) {
			return fmt.Errorf("the client's error does not show %q (transcript in %s):\n%s", want, r.logFile, truncate(r.output, 600))
		}
	}
	return nil
}

// noStrays checks, after every client ran, that nothing arrived twice and
// that nothing refused was queued or delivered.
func (e *env) noStrays() {
	time.Sleep(500 * time.Millisecond) // room for a late duplicate
	var problems []string
	for _, rcpt := range e.sent {
		if n := len(e.sink.To(rcpt)); n != 1 {
			problems = append(problems, fmt.Sprintf("%s: %d messages at the sink", rcpt, n))
		}
	}
	for _, rcpt := range e.refused {
		if n := len(e.sink.To(rcpt)); n != 0 {
			problems = append(problems, fmt.Sprintf("%s (refused): %d messages at the sink", rcpt, n))
		}
		if listed, err := e.api.emailsTo(rcpt); err != nil || len(listed) != 0 {
			problems = append(problems, fmt.Sprintf("%s (refused): GET /v1/emails lists %d (%v)", rcpt, len(listed), err))
		}
	}
	if n := len(e.sink.Messages()); n != len(e.sent) {
		problems = append(problems, fmt.Sprintf("the sink holds %d messages for %d accepted sends", n, len(e.sent)))
	}
	var err error
	if len(problems) > 0 {
		err = errors.New(strings.Join(problems, "\n"))
	}
	e.rep.check("all clients: no duplicate or stray delivery, nothing queued for refused sends",
		fmt.Sprintf("%d messages for %d accepted sends, %d refused", len(e.sink.Messages()), len(e.sent), len(e.refused)), err)
}

func clientFailure(r clientRun) error {
	why := fmt.Sprintf("exit: %v", r.exitErr)
	if r.timedOut {
		why = fmt.Sprintf("hung: killed after %s", clientTimeout)
	}
	return fmt.Errorf("%s (transcript in %s):\n%s", why, r.logFile, truncate(r.output, 1500))
}

func envelopeDetail(got []received) string {
	if len(got) != 1 {
		return ""
	}
	how := "plaintext"
	if got[0].TLS {
		how = "STARTTLS"
	}
	return fmt.Sprintf("the sink got MAIL FROM:<%s> over %s, %d bytes", got[0].From, how, len(got[0].Data))
}

// errorLine returns the part of the line of out that holds code, shortened.
func errorLine(out, code string) string {
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(strings.TrimLeft(l, "<~*- "))
		if i := strings.Index(l, code); i >= 0 {
			if i > 60 {
				l = "…" + l[i-40:]
			}
			return truncate(l, 120)
		}
	}
	return truncate(strings.TrimSpace(out), 120)
}

// message is a received message, decoded.
type message struct {
	header     mail.Header
	html       string
	htmlParts  int
	attachment []byte
	attName    string
	attType    string
	attCount   int
}

func parseMessage(raw []byte) (*message, error) {
	mr, err := mail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	m := &message{header: mr.Header}
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(p.Body)
		if err != nil {
			return nil, err
		}
		switch h := p.Header.(type) {
		case *mail.InlineHeader:
			ct, _, _ := h.ContentType()
			if ct == "text/html" {
				m.html += string(body)
				m.htmlParts++
			}
		case *mail.AttachmentHeader:
			m.attCount++
			m.attName, _ = h.Filename()
			m.attType, _, _ = h.ContentType()
			m.attachment = body
		}
	}
	return m, nil
}

func (m *message) checkHeaders(rcpt string) error {
	var problems []string
	from, err := m.header.AddressList("From")
	if err != nil || len(from) != 1 || from[0].Name != wantFromName || from[0].Address != sender {
		problems = append(problems, fmt.Sprintf("From: %v (%v), want %q <%s>; raw %q", from, err, wantFromName, sender, m.header.Get("From")))
	}
	to, err := m.header.AddressList("To")
	if err != nil || len(to) != 1 || to[0].Name != wantToName || to[0].Address != rcpt {
		problems = append(problems, fmt.Sprintf("To: %v (%v), want %q <%s>; raw %q", to, err, wantToName, rcpt, m.header.Get("To")))
	}
	subject, err := m.header.Subject()
	if err != nil || subject != wantSubject {
		problems = append(problems, fmt.Sprintf("Subject: %q (%v), want %q; raw %q", subject, err, wantSubject, m.header.Get("Subject")))
	}
	if id, err := m.header.MessageID(); err != nil || id == "" {
		problems = append(problems, fmt.Sprintf("Message-ID: %q (%v)", m.header.Get("Message-Id"), err))
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "\n"))
	}
	return nil
}

func (m *message) checkStripped() error {
	var found []string
	fields := m.header.Fields()
	for fields.Next() {
		if strings.HasPrefix(strings.ToLower(fields.Key()), "x-sp-") {
			found = append(found, fields.Key()+": "+fields.Value())
		}
	}
	if len(found) > 0 {
		return fmt.Errorf("still present: %s", strings.Join(found, "; "))
	}
	return nil
}

func (m *message) checkAttachment(root string) error {
	want, err := os.ReadFile(filepath.Join(root, "e2e/fixtures/invoice.pdf"))
	if err != nil {
		return err
	}
	switch {
	case m.attCount != 1:
		return fmt.Errorf("%d attachments, want 1", m.attCount)
	case m.attName != "invoice.pdf":
		return fmt.Errorf("filename %q, want invoice.pdf", m.attName)
	case m.attType != "application/pdf":
		return fmt.Errorf("Content-Type %q, want application/pdf", m.attType)
	case !bytes.Equal(m.attachment, want):
		return fmt.Errorf("%d bytes differ from the %d sent (first difference at byte %d)", len(m.attachment), len(want), firstDiff(m.attachment, want))
	}
	return nil
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func (e *env) checkDKIM(raw []byte) error {
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(raw), &dkim.VerifyOptions{LookupTXT: e.dns.lookupTXT})
	if err != nil {
		return err
	}
	var seen []string
	for _, v := range vs {
		if v.Err == nil && v.Domain == senderDomain && containsFold(v.HeaderKeys, "From") {
			return nil
		}
		seen = append(seen, fmt.Sprintf("d=%s: %v", v.Domain, v.Err))
	}
	if len(seen) == 0 {
		return errors.New("no DKIM-Signature header")
	}
	return fmt.Errorf("no valid signature of d=%s covering From: %s", senderDomain, strings.Join(seen, "; "))
}

// checkDkimpy verifies raw with dkimpy, an implementation independent of
// the Go code on both sides. python3-dkim installs it for Debian's own
// /usr/bin/python3, which need not be the python3 on PATH (pyenv);
// E2E_DKIMPY_PYTHON names another interpreter.
func (e *env) checkDkimpy(raw []byte) error {
	keys, err := json.Marshal(e.dns.txtRecords("._domainkey."))
	if err != nil {
		return err
	}
	cmd := exec.Command(envOr("E2E_DKIMPY_PYTHON", "/usr/bin/python3"), filepath.Join(e.root, "e2e/clients/dkim_verify.py"))
	cmd.Stdin = bytes.NewReader(raw)
	cmd.Env = append(os.Environ(), "DKIM_KEYS="+string(keys))
	if out, err := cmd.CombinedOutput(); err != nil {
		if bytes.Contains(out, []byte("No module named 'dkim'")) {
			return errors.New("dkimpy is missing: apt-get install -y python3-dkim")
		}
		return fmt.Errorf("%v: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// localURL maps a tracking URL under http.public_url to the listener.
func (e *env) localURL(u string) string {
	return "http://" + e.addrs.HTTP + strings.TrimPrefix(u, publicURL)
}

var (
	imgSrc   = regexp.MustCompile(`(?i)<img\b[^>]*\bsrc\s*=\s*["']([^"']+)["']`)
	hrefAttr = regexp.MustCompile(`(?i)<a\b[^>]*\bhref\s*=\s*["']([^"']+)["']`)
)

// pixel returns the open pixel's URL, checking that the HTML kept its content.
func (m *message) pixel(id string) (string, error) {
	if m.htmlParts != 1 {
		return "", fmt.Errorf("%d text/html parts, want 1", m.htmlParts)
	}
	if !strings.Contains(m.html, wantHeading) {
		return "", fmt.Errorf("the HTML lost its content: %s", truncate(m.html, 300))
	}
	want := publicURL + "/v1/track/open/" + id
	for _, sm := range imgSrc.FindAllStringSubmatch(m.html, -1) {
		if src := html.UnescapeString(sm[1]); src == want {
			return src, nil
		}
	}
	return "", fmt.Errorf("no <img src=%q> in the HTML: %s", want, truncate(m.html, 400))
}

// link returns the one link's URL, which must be a tracked one.
func (m *message) link() (string, error) {
	hrefs := hrefAttr.FindAllStringSubmatch(m.html, -1)
	if len(hrefs) != 1 {
		return "", fmt.Errorf("%d links in the HTML, want 1: %s", len(hrefs), truncate(m.html, 400))
	}
	href := html.UnescapeString(hrefs[0][1])
	if !strings.HasPrefix(href, publicURL+"/v1/track/click/") {
		return "", fmt.Errorf("link not rewritten: href %q", href)
	}
	return href, nil
}

func (e *env) fetchPixel(pixel string) error {
	resp, body, err := e.api.get(e.localURL(pixel), mailClientAgent)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/gif" || len(body) == 0 {
		return fmt.Errorf("GET %s: %d %s, %d bytes", pixel, resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
	}
	return nil
}

func (e *env) fetchLink(href string) error {
	resp, _, err := e.api.get(e.localURL(href), browserAgent)
	if err != nil {
		return err
	}
	if resp.StatusCode != 302 || resp.Header.Get("Location") != wantLink {
		return fmt.Errorf("GET %s: %d, Location %q, want 302 to %q", href, resp.StatusCode, resp.Header.Get("Location"), wantLink)
	}
	return nil
}
