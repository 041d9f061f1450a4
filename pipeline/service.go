// Package pipeline is the submission transaction that smtpd and api share:
// Authenticate, CheckSender and Submit, which validates, checks
// suppressions, charges the rate limit, plans the tracking and persists
// the message once with its emails and enqueues them in one Redis
// transaction; Render, which makes each recipient's tracked copy from the
// stored message when it is delivered or read; with it the idempotency of sends,
// the in-flow control and the caches of the hot path (and their
// invalidation across processes). Every rejection is an *Error carrying its
// SMTP and HTTP forms; no business rule lives in the protocol packages.
//
// What comes before and after a submission lives beside it, one concern
// per package: compose (a REST request made MIME), account (keys, domains,
// suppressions, webhook endpoints, reading mail back), engagement
// (tracking hits, settings, analytics), deliver (the queue to the
// destination), webhooks, dkim and store (every Redis key).
//
// Transaction contract: when Submit returns nil, every email of the
// Submission and its queue entry are in Redis (on disk when Redis runs with
// appendfsync always), and only then may the caller acknowledge (SMTP 250,
// HTTP 2xx). On error nothing was stored.
package pipeline

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/mail"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"github.com/pigeonpost/pigeonpost/internal/ttlcache"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
	"github.com/pigeonpost/pigeonpost/tracking"
)

// Options configure a Service.
type Options struct {
	Hostname  string // our host name, for generated Message-IDs
	PublicURL string // base of tracking URLs, no trailing slash
	RateLimit RateLimit
	CacheTTL  time.Duration // how long key, sender-domain and tracking lookups are reused; 0 disables the caches
	InFlow    InFlow        // slowing submissions down when delivery falls behind (flow.go)
	// AuthFailureDelay is added per recent authentication failure from
	// one address (auth.failure_delay; authguard.go).
	AuthFailureDelay time.Duration
	// LockOutPrivate locks out loopback and private addresses too
	// (auth.lockout_private_addresses; authguard.go).
	LockOutPrivate bool
	// AllowPrivateDestinations accepts recipients at address literals and
	// localhost (delivery.allow_private_destinations; CheckRecipient).
	AllowPrivateDestinations bool
	Now                      func() time.Time
	Logger                   *slog.Logger
	Metrics                  *Metrics
}

// Service is the submission transaction. It is safe for concurrent use.
type Service struct {
	opt     Options
	store   *store.Store
	rdb     redis.UniversalClient
	signer  *tracking.Signer
	keys    *ttlcache.Cache[*store.Key]     // by key hash
	domains *ttlcache.Cache[*store.Domain]  // by account and domain name; nil: none
	tracks  *ttlcache.Cache[cachedTracking] // tracking settings, by account and domain name

	authFails authFailures // per client address (authguard.go)
	readiness readiness    // the readiness probe in flight (health.go)

	// The delivery backlog as last read, for the in-flow control (flow.go).
	backlog        atomic.Int64
	backlogAt      atomic.Int64 // when it was read, in Unix ns
	backlogReading atomic.Bool
}

// New returns the Service that submits into st. signer makes the click ids
// of tracked links; the engagement package checks them with the same one.
func New(st *store.Store, signer *tracking.Signer, opt Options) *Service {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.Metrics == nil {
		opt.Metrics = NewMetrics(nil)
	}
	return &Service{
		opt:     opt,
		store:   st,
		rdb:     st.Redis(),
		signer:  signer,
		keys:    ttlcache.New[*store.Key](opt.CacheTTL),
		domains: ttlcache.New[*store.Domain](opt.CacheTTL),
		tracks:  ttlcache.New[cachedTracking](opt.CacheTTL),
	}
}

// StorageError maps a Redis failure to the client-facing error: nothing was
// stored, so the client must retry later.
func StorageError(err error) *Error {
	var pe *Error
	if errors.As(err, &pe) {
		return pe
	}
	if strings.HasPrefix(err.Error(), "OOM ") || strings.HasPrefix(err.Error(), "MISCONF ") {
		return ErrStorageFull.WithCause(err)
	}
	return ErrUnavailable.WithCause(err)
}

// ---- authentication ----

// Authenticate returns the key whose secret this is. Unknown and revoked keys
// get the same ErrAuthFailed; a storage failure is ErrUnavailable, never a
// credentials error. A secret spelled with the Pigeon Perch prefix
// (pp_live_…, pp_test_…) is the stored key sp_live_…, sp_test_… (CanonicalSecret).
func (s *Service) Authenticate(ctx context.Context, secret string) (*store.Key, error) {
	return s.KeyByHash(ctx, store.HashKey(CanonicalSecret(secret)))
}

// KeyByHash is Authenticate for the key whose SHA-256 (hex, store.HashKey
// of its canonical secret) this is, through the same cache: the dashboard
// keeps a session's key by its hash, and a revoked key ends its sessions as
// soon as its cached copy goes (KeyChanged).
func (s *Service) KeyByHash(ctx context.Context, hash string) (*store.Key, error) {
	now := s.opt.Now()
	return s.keys.Lookup(hash, now, func() (*store.Key, error) {
		k, err := s.store.KeyByHash(ctx, hash)
		if errors.Is(err, store.ErrNotFound) {
			return nil, ErrAuthFailed
		}
		if err != nil {
			return nil, StorageError(err)
		}
		if k.LastUsedAt == nil || now.Sub(*k.LastUsedAt) > time.Minute {
			if err := s.store.TouchKeyByHash(ctx, hash, now); err != nil {
				s.opt.Logger.Warn("recording key use failed", "key", k.ID, "err", err)
			}
		}
		return k, nil
	})
}

// keyPrefixAliases maps each other spelling of a key's prefix to the one the
// key store hashes: Pigeon Perch's documentation writes keys pp_live_… and
// pp_test_…, and clients written against it send them so.
var keyPrefixAliases = [...]struct{ alias, canonical string }{
	{"pp_live_", "sp_live_"},
	{"pp_test_", "sp_test_"},
}

// CanonicalSecret returns secret as the key store knows it: pp_live_X is
// sp_live_X and pp_test_X is sp_test_X (same key, same mode); any other
// secret is returned unchanged. Authenticate, which REST and SMTP AUTH both
// call, is the one place that looks a key up with it, before the secret is
// hashed (api also uses it to tell whether two headers name one key).
func CanonicalSecret(secret string) string {
	for _, p := range keyPrefixAliases {
		if rest, ok := strings.CutPrefix(secret, p.alias); ok {
			return p.canonical + rest
		}
	}
	return secret
}

// RequireAdmin refuses a key the account's administration (its sending
// domains and their tracking, live keys) must not be left to: one that is not full, one of
// test mode (it cannot send live mail: it must not shape what live mail
// does), one limited to a domain (it must not widen its own reach).
func RequireAdmin(k *store.Key) error {
	switch {
	case k.Permission != store.PermissionFull:
		return Forbidden(store.PermissionFull)
	case k.Mode != store.ModeLive:
		return ErrForbidden.With("a test-mode key may not administer the account's domains or live keys; use a live key")
	case k.DomainID != "":
		return ErrForbidden.With("a key limited to one domain may not administer the account's domains; use an unlimited key")
	}
	return nil
}

// RequirePermission refuses a key without permission.
func RequirePermission(k *store.Key, permission string) error {
	if permission == store.PermissionFull && k.Permission != store.PermissionFull {
		return Forbidden(permission)
	}
	return nil
}

// MayRead reports whether k, a key of e's account, may read e (and cancel
// it): a full key reads the account's mail, a sending key only what it sent
// itself (its permission is to send, not to read the account's mail).
func MayRead(k *store.Key, e *store.Email) bool {
	return k.Permission == store.PermissionFull || e.KeyID == k.ID
}

// ---- submission ----

// Tracking says which tracking a message asks for.
type Tracking struct {
	Opens  bool
	Clicks bool
}

// Submission is one message as received by a protocol.
type Submission struct {
	Key          *store.Key
	Source       string   // "smtp" or "api"
	EnvelopeFrom string   // MAIL FROM; for the API, the From address
	Recipients   []string // envelope recipients; one email record each
	Message      []byte   // the RFC 5322 message, CRLF-normalised
	// LongestLine is the length of Message's longest line, CRLF excluded,
	// when the caller measured it on the way in (NormalizeCRLF's
	// LongestLine, as smtpd does): Submit then looks for a line too long
	// to relay only when there is one. 0: not measured, Submit measures.
	LongestLine int
	// Tracking from the API; nil for SMTP, where X-SP-Track-* headers decide.
	Tracking *Tracking
	Tags     []string
	Metadata map[string]string

	// ScheduledAt, when not zero, holds the emails until then (scheduled_at).
	// When zero, the message's X-SP-Send-At header may set it (prepare).
	ScheduledAt time.Time
	// Claim is the idempotency key a REST send took (ClaimSend); the
	// caller releases it if Submit fails. When nil, Submit derives a key
	// for SMTP messages itself (idempotency.go).
	Claim *Claim

	// Send, set by the sends API, is recorded on each email; a suppressed
	// recipient of a send is then recorded too (status suppressed) rather
	// than left out, so that the send's status shows it.
	Send *store.SendRef
	// Withhold, when set, records every recipient as suppressed for this
	// reason without charging or delivering anything (e.g. the contact
	// unsubscribed). Only with Send.
	Withhold string
	// Admission, when set, is the admission of Recipients begun as the
	// message came in (BeginAdmission): Submit uses its answer instead of
	// admitting at the end, and releases it.
	Admission *Admission
	// EmailIDs, when set, are the ids of the emails, one per recipient
	// (store.NewIDIn("em", Service.ShardFor(Claim)): all in the shard of
	// the claim, if any), made by a caller that must know them before (a
	// List-Unsubscribe link names its email).
	EmailIDs []string
}

// Receipt says what Submit stored. It is also the response stored under an
// idempotency key, hence the JSON names.
type Receipt struct {
	IDs         []string     `json:"ids"` // one per recipient not suppressed (for a Send: per recipient), in order
	Status      store.Status `json:"status"`
	Suppressed  []string     `json:"suppressed,omitempty"`
	Warnings    []string     `json:"warnings,omitempty"`
	ScheduledAt *time.Time   `json:"scheduledAt,omitempty"`
	// Replayed: this is the stored receipt of an earlier submission with
	// the same idempotency key; nothing was stored this time.
	Replayed bool `json:"-"`
}

// CheckSender checks that the key may send as addr (envelope sender or From:).
// SMTP calls it at MAIL FROM so an unverified domain is refused early.
func (s *Service) CheckSender(ctx context.Context, k *store.Key, addr string) error {
	a, err := ParseAddress(addr)
	if err != nil {
		return err
	}
	if err := s.checkKeyDomain(ctx, k, a); err != nil {
		return err
	}
	if k.Mode == store.ModeTest {
		return nil // nothing a test key sends is delivered
	}
	domain := DomainOf(a)
	d, err := s.senderDomain(ctx, k.AccountID, domain)
	if err != nil {
		return err
	}
	if d == nil || !d.Verified() {
		return unverifiedDomain(domain)
	}
	return nil
}

func domainCacheKey(accountID, domain string) string { return accountID + "\x00" + domain }

// senderDomain looks the account's domain up, through the cache: nil when
// the account has none by that name. What it returns is shared: read it,
// do not change it.
func (s *Service) senderDomain(ctx context.Context, accountID, domain string) (*store.Domain, error) {
	return s.domains.Lookup(domainCacheKey(accountID, domain), s.opt.Now(), func() (*store.Domain, error) {
		rec, err := s.store.DomainByName(ctx, accountID, domain)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return nil, nil
		case err != nil:
			return nil, StorageError(err)
		}
		return rec, nil
	})
}

// SigningDomain is the account's domain named name, with its DKIM key, as
// delivery signs with it (deliver.Worker.Domains): nil when there is none.
// It is cached as the sender checks are, and dropped on a change
// (DomainChanged) in every process. What it returns is shared.
func (s *Service) SigningDomain(ctx context.Context, accountID, name string) (*store.Domain, error) {
	return s.senderDomain(ctx, accountID, name)
}

// Limits of RFC 5321 §4.5.3.1: a local part of 64 octets, a path of 256
// (the address and its angle brackets).
const (
	MaxLocalPartOctets = 64
	MaxAddressOctets   = 254
)

// ParseAddress checks a bare mailbox address (no display name) and returns it.
// A quoted local part is refused unless it reads the same unquoted
// ("a b"@x is: go-smtp hands it over unquoted, and it could not go out as
// it came), and so are the limits of RFC 5321 §4.5.3.1.
func ParseAddress(addr string) (string, error) {
	if addr == "" {
		return "", ErrBadAddress.With("an empty sender or recipient address is not accepted")
	}
	if strings.ContainsAny(addr, "\r\n<>") {
		return "", ErrBadAddress.With("address " + Quote(addr) + " contains forbidden characters")
	}
	if len(addr) > MaxAddressOctets {
		return "", ErrBadAddress.Withf("address %s is %d octets long; the limit is %d (RFC 5321 §4.5.3.1.3)", Quote(addr), len(addr), MaxAddressOctets)
	}
	if at := strings.LastIndexByte(addr, '@'); at > MaxLocalPartOctets {
		return "", ErrBadAddress.Withf("the local part of %s is %d octets long; the limit is %d (RFC 5321 §4.5.3.1.1)", Quote(addr), at, MaxLocalPartOctets)
	}
	a, err := mail.ParseAddress(addr)
	if err != nil || a.Address != addr || !strings.Contains(addr, "@") {
		return "", ErrBadAddress.With("address " + Quote(addr) + " is not a valid mailbox")
	}
	return addr, nil
}

// CheckRecipient checks a recipient address: a mailbox (ParseAddress) at
// a domain reached through its MX. An address literal (user@[192.0.2.1])
// or a localhost domain would pick the destination host itself, past the
// MX and the delivery's address checks' intent, so a multi-tenant gateway
// refuses it here (550 5.1.2), unless delivery.allow_private_destinations
// (Options.AllowPrivateDestinations) says otherwise.
func (s *Service) CheckRecipient(addr string) error {
	if _, err := ParseAddress(addr); err != nil {
		return err
	}
	if s.opt.AllowPrivateDestinations {
		return nil
	}
	domain := strings.TrimSuffix(DomainOf(addr), ".")
	if strings.HasPrefix(domain, "[") || domain == "localhost" || strings.HasSuffix(domain, ".localhost") {
		return ErrBadDestination.Withf("recipient %s: address literals and localhost are not accepted; give a domain", Quote(addr))
	}
	return nil
}

// DomainOf is the domain of a checked address, lower-cased.
func DomainOf(addr string) string {
	return strings.ToLower(addr[strings.LastIndexByte(addr, '@')+1:])
}

// Quote quotes a client-given value for an error message, cut to 80 bytes
// at a character boundary. Control characters are escaped (Go syntax): the
// message goes into SMTP replies, JSON and logs, where a raw CR or LF
// would start a line of the client's making.
func Quote(s string) string {
	if len(s) > 80 {
		s = Cut(s, 80) + "…"
	}
	return strconv.Quote(s)
}

// Cut returns s cut to at most n bytes, at a character boundary: what a
// client sent, kept bounded.
func Cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Submit validates the submission and stores one email per recipient,
// queued for delivery. See the package comment for what is durable when.
func (s *Service) Submit(ctx context.Context, sub Submission) (*Receipt, error) {
	r, err := s.submit(ctx, sub)
	s.opt.Metrics.observeSubmit(sub.Source, err)
	return r, err
}

func (s *Service) submit(ctx context.Context, sub Submission) (_ *Receipt, err error) {
	defer sub.Admission.Release() // its charge goes back unless the message is stored
	now := s.opt.Now().UTC()
	p, err := s.prepare(ctx, sub, sub.Claim == nil, now)
	if err != nil {
		return nil, err
	}
	claim := sub.Claim
	if claim == nil && p.claim != nil {
		claim = p.claim
		defer s.releaseOnError(claim, &err)
	}
	// A claim never written (an SMTP message's) was not looked up: a copy
	// of a message stored before finds its receipt when it is stored, or,
	// refused (the rate, the month's limit or a suppression it may have
	// reached with the first copy), before the refusal is answered.
	replayOr := func(err error) (*Receipt, error) {
		if claim != nil && claim.token == "" {
			if r, lerr := s.lostRace(ctx, claim); r != nil || lerr != nil {
				return r, lerr
			}
		}
		return nil, err
	}
	suppressed, err := s.admitted(ctx, sub, p, now)
	if err != nil {
		return replayOr(err)
	}
	p.shard = s.ShardFor(claim)
	if claim == nil && len(sub.EmailIDs) > 0 {
		p.shard = store.ShardOf(sub.EmailIDs[0]) // ids made for it name their shard
	}
	if sub.Send == nil && !slices.Contains(suppressed[0], false) {
		return replayOr(ErrAllSuppressed)
	}
	emails, m, receipt, err := s.emailsOf(p, suppressed[0], now)
	if err != nil {
		return nil, err
	}
	if sub.Key.Mode == store.ModeLive {
		s.inFlowDelay(ctx) // delivery falling behind slows acceptance (flow.go)
	}
	opt := store.PersistOptions{Enqueue: sub.Key.Mode == store.ModeLive, Messages: []store.NewMessage{*m}}
	if claim != nil {
		resp, err := json.Marshal(receipt)
		if err != nil {
			return nil, err
		}
		opt.Idempotency = claim.done(resp)
	}
	if err := s.persist(ctx, emails, opt); err != nil {
		if errors.Is(err, store.ErrClaimLost) {
			return replayOr(err)
		}
		return nil, err
	}
	sub.Admission.keep()
	return receipt, nil
}

// admitted is admit for p, or the answer of the admission begun when the
// message's DATA came in (Submission.Admission) when that admitted it.
func (s *Service) admitted(ctx context.Context, sub Submission, p *prepared, now time.Time) ([][]bool, error) {
	if suppressed, ok := sub.Admission.result(ctx, sub); ok {
		return [][]bool{suppressed}, nil
	}
	sub.Admission.Release() // what it charged goes back before the message is charged again
	return s.admit(ctx, sub.Key, []*prepared{p}, now, true)
}

// prepared is a submission checked and ready to be admitted.
type prepared struct {
	sub      Submission
	msg      *submittedMessage
	track    trackPlan
	warnings []string
	claim    *Claim      // the key derived from an SMTP message (smtpIdempotency)
	shard    store.Shard // where its mail goes (Service.ShardFor): set before emailsOf
}

// prepare checks sub and plans its tracking. With derive, it makes the
// idempotency claim of an SMTP message, never written (smtpIdempotency).
func (s *Service) prepare(ctx context.Context, sub Submission, derive bool, now time.Time) (_ *prepared, err error) {
	k := sub.Key
	if len(sub.Recipients) == 0 {
		return nil, ErrBadAddress.With("at least one recipient is required")
	}
	if err := s.CheckSender(ctx, k, sub.EnvelopeFrom); err != nil {
		return nil, err
	}
	for _, rcpt := range sub.Recipients {
		if err := s.CheckRecipient(rcpt); err != nil {
			return nil, err
		}
	}
	generatedID := false
	msg, err := parseMessage(sub.Message, s.opt.Hostname, func() string { generatedID = true; return store.NewID("msg") }, now)
	if err != nil {
		return nil, err
	}
	if err := msg.shortenLines(sub.LongestLine); err != nil {
		return nil, err
	}
	for _, addr := range append([]string{msg.from}, msg.senders...) {
		if !strings.EqualFold(addr, sub.EnvelopeFrom) {
			if err := s.CheckSender(ctx, k, addr); err != nil {
				return nil, err
			}
		}
	}
	if err := checkSchedule("scheduled_at", sub.ScheduledAt, now); err != nil {
		return nil, err
	}
	if sub.ScheduledAt.IsZero() {
		// X-SP-Send-At schedules a message as REST's scheduledAt does; an
		// explicit Submission.ScheduledAt wins over the header. Only SMTP
		// messages carry it: compose refuses X-SP-* headers in a REST send.
		sub.ScheduledAt = msg.sendAt
	}
	if err := CheckLabels(sub.Tags, sub.Metadata); err != nil {
		return nil, err
	}
	p := &prepared{sub: sub, msg: msg}
	if derive {
		if p.claim, err = s.smtpIdempotency(ctx, sub, msg, generatedID); err != nil {
			return nil, err
		}
		if p.claim != nil {
			defer s.releaseOnError(p.claim, &err)
		}
	}
	if p.track, p.warnings, err = s.trackingFor(ctx, k, sub.Tracking, msg); err != nil {
		return nil, err
	}
	return p, nil
}

// admit checks the recipients of ps against the account's suppression
// list and charges the sends to the others to its rate, all at once:
// suppressed[i][j] reports recipient j of ps[i] suppressed (or withheld by
// the sender: Submission.Withhold). On ErrRateLimited nothing is charged.
// Without charge it only looks (Preview): the suppressions and the pause.
func (s *Service) admit(ctx context.Context, k *store.Key, ps []*prepared, now time.Time, charge bool) ([][]bool, error) {
	var rcpts []string
	for _, p := range ps {
		if p.sub.Withhold == "" {
			rcpts = append(rcpts, p.sub.Recipients...)
		}
	}
	var listed []bool
	if len(rcpts) > 0 {
		var err error
		if listed, err = s.opt.RateLimit.admit(ctx, s.rdb, k.AccountID, rcpts, now, charge); err != nil {
			return nil, err
		}
	}
	out := make([][]bool, len(ps))
	for i, p := range ps {
		out[i] = make([]bool, len(p.sub.Recipients))
		for j := range out[i] {
			if p.sub.Withhold != "" {
				out[i][j] = true
			} else {
				out[i][j], listed = listed[0], listed[1:]
			}
		}
	}
	return out, nil
}

// emailsOf makes the email records of p, one per recipient that is not
// suppressed, and the receipt, and the message they all name: the MIME
// as received (its header block edited), stored once and untracked. Each
// email's tracking is rendered from it when it is needed (Render): at
// delivery, and when its content is read. A send (Submission.Send) also
// records its suppressed recipients, as suppressed emails that go
// nowhere.
func (s *Service) emailsOf(p *prepared, suppressed []bool, now time.Time) ([]store.NewEmail, *store.NewMessage, *Receipt, error) {
	sub, msg := p.sub, p.msg
	k := sub.Key
	// As documented, an accepted send answers "sent": pigeonpost has it
	// (the email record itself is pending until a worker hands it over).
	receipt := &Receipt{Status: store.StatusSent, Warnings: p.warnings}
	m := &store.NewMessage{ID: store.NewIDIn("msg", p.shard), MIME: msg.bytes()}
	var recipients []string
	for i, rcpt := range sub.Recipients {
		if suppressed[i] {
			receipt.Suppressed = append(receipt.Suppressed, rcpt)
		} else {
			recipients = append(recipients, rcpt)
		}
	}
	emails := make([]store.NewEmail, 0, len(sub.Recipients))
	for i, rcpt := range sub.Recipients {
		if suppressed[i] && sub.Send == nil {
			continue
		}
		id := store.NewIDIn("em", p.shard)
		if len(sub.EmailIDs) == len(sub.Recipients) {
			id = sub.EmailIDs[i]
		}
		e := p.email(id, rcpt, now)
		e.Message, e.MessageLen = m.ID, int64(len(m.MIME))
		receipt.IDs = append(receipt.IDs, e.ID)
		if suppressed[i] {
			e.Status, e.LastError = store.StatusSuppressed, cmp.Or(sub.Withhold, "the address is on the suppression list")
			emails = append(emails, store.NewEmail{Email: e})
			continue
		}
		p.track.record(e)
		if k.Mode == store.ModeTest {
			// Test keys run the whole pipeline but nothing is delivered;
			// the MIME is kept for GET /v1/emails/:id/content.
			e.Status = store.StatusSent
			e.SentAt = &now
		}
		applySchedule(e, sub.ScheduledAt)
		emails = append(emails, store.NewEmail{Email: e})
	}
	if len(recipients) == 0 {
		receipt.Status = store.StatusSuppressed
	} else if at := sub.ScheduledAt; !at.IsZero() {
		at = at.UTC()
		receipt.Status, receipt.ScheduledAt = store.StatusScheduled, &at
		if len(emails) > 1 {
			group := store.EmailGroup(receipt.IDs)
			for i := range emails {
				emails[i].Group = group
			}
		}
	}
	return emails, m, receipt, nil
}

// email returns the record of p's email to rcpt, pending.
func (p *prepared) email(id, rcpt string, now time.Time) *store.Email {
	sub, msg, k := p.sub, p.msg, p.sub.Key
	return &store.Email{
		ID: id, AccountID: k.AccountID, KeyID: k.ID, Mode: k.Mode,
		Status: store.StatusPending, Source: sub.Source,
		FromAddress: msg.from, EnvelopeFrom: sub.EnvelopeFrom, ToAddress: rcpt,
		Subject: msg.subject, MessageID: msg.messageID, Tags: sub.Tags, Metadata: sub.Metadata,
		CreatedAt: now, Send: sub.Send,
	}
}

// cachedTracking is an account's tracking settings for one sending domain.
type cachedTracking struct {
	accountID string
	st        store.SendingTracking
}

// TrackingSettings returns the tracking settings that apply to mail from
// domain, through the cache: every tracked send and every tracking hit
// needs them. Changes drop the account's entries (invalidate.go).
func (s *Service) TrackingSettings(ctx context.Context, accountID, domain string) (store.SendingTracking, error) {
	c, err := s.tracks.Lookup(domainCacheKey(accountID, domain), s.opt.Now(), func() (cachedTracking, error) {
		st, err := s.store.TrackingFor(ctx, accountID, domain)
		return cachedTracking{accountID: accountID, st: st}, err
	})
	return c.st, err
}
