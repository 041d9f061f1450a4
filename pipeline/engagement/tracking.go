package engagement

import (
	"context"
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
	"github.com/pigeonpost/pigeonpost/tracking"
)

// Visitor is what a tracking request says about who made it. It is used to
// classify the hit, and stored only outside privacy mode.
type Visitor struct {
	Method    string
	IP        string
	UserAgent string
	Referer   string
}

// errNoSuchLink is a click id whose index the email does not have, or an
// open of an email that did not ask for open tracking.
var errNoSuchLink = errors.New("no such link")

// errHitsCapped is a hit on an email that has all the tracking events it
// may keep (maxHitEvents).
var errHitsCapped = errors.New("the email has all the tracking events it may keep")

// Anyone may hit a pixel or a click link, as often as they like and with
// any User-Agent: what a hit stores is bounded. An email keeps at most
// maxHitEvents tracking events (people open a mail a few times; a loop
// hitting it gets no further), and a visitor's User-Agent and Referer are
// kept to their first maxAgentBytes and maxRefererBytes.
const (
	maxHitEvents    = 100
	maxAgentBytes   = 256
	maxRefererBytes = 512
)

// bounded is v with its User-Agent and Referer cut to what is kept.
func (v Visitor) bounded() Visitor {
	v.UserAgent = pipeline.Cut(v.UserAgent, maxAgentBytes)
	v.Referer = pipeline.Cut(v.Referer, maxRefererBytes)
	return v
}

// maxEmailIDLen bounds the ids the pixel endpoint looks up.
const maxEmailIDLen = 64

// RecordOpen queues an open of the email for recording (hits.go). Unknown
// ids are ignored: the pixel answers the same whatever happens.
func (s *Service) RecordOpen(ctx context.Context, emailID string, v Visitor) {
	if !strings.HasPrefix(emailID, "em_") || len(emailID) > maxEmailIDLen {
		return
	}
	now := s.opt.Now()
	if !s.mayRecord(v, now) {
		return
	}
	s.queueHit(ctx, trackHit{emailID: emailID, kind: tracking.HitOpen, visitor: v.bounded(), at: now})
}

// mayRecord reports whether a hit of v at now may be recorded: whether its
// address is within its rate (iprate.go). A hit over it is counted, and
// answered as any other.
func (s *Service) mayRecord(v Visitor, now time.Time) bool {
	if s.ipRate.allow(v.IP, now) {
		return true
	}
	s.metrics.hits.WithLabelValues("rate_limited").Inc()
	return false
}

// ResolveClick checks a click id and returns the destination the original
// mail held for it, queueing the click for recording. A tampered or
// unknown id is ErrNotFound: no redirect to anything the mail did not
// contain, and nothing recorded. A sealed id (tracking.SealedClickID) of
// mail whose record has expired still redirects, and is counted on its
// account's day (store.StatExpiredClicks): recipients click links in old
// receipts and invoices for years.
func (s *Service) ResolveClick(ctx context.Context, clickID string, v Visitor) (string, error) {
	c, ok := s.signer.ParseClick(clickID)
	if !ok {
		return "", pipeline.NotFound("link")
	}
	links, err := s.emailLinks(ctx, c.EmailID)
	now := s.opt.Now()
	switch {
	case errors.Is(err, store.ErrNotFound) && c.Dest != "":
		if !s.mayRecord(v, now) {
			return c.Dest, nil
		}
		if err := s.store.CountExpiredClick(ctx, c.AccountID, c.EmailID, now); err != nil {
			s.opt.Logger.Warn("counting a click on expired mail failed", "err", err)
		}
		return c.Dest, nil
	case errors.Is(err, store.ErrNotFound):
		return "", pipeline.NotFound("link")
	case err != nil:
		return "", pipeline.StorageError(err)
	}
	if c.Index >= len(links) {
		return "", pipeline.NotFound("link")
	}
	if s.mayRecord(v, now) {
		s.queueHit(ctx, trackHit{emailID: c.EmailID, kind: tracking.HitClick, index: c.Index, visitor: v.bounded(), at: now})
	}
	return links[c.Index], nil
}

// emailLinks returns the email's link destinations, through the cache:
// they never change once recorded, at the email's first render (delivery,
// or its content read), before any copy with a click id exists.
func (s *Service) emailLinks(ctx context.Context, emailID string) ([]string, error) {
	return s.links.Lookup(emailID, s.opt.Now(), func() ([]string, error) {
		return s.store.EmailLinks(ctx, emailID)
	})
}

// decideHit returns how h is recorded on the email's current record: as an
// opened or clicked event, classified by the bot table
// (tracking.Classifier). A person's or proxy's first hit sets openedAt or
// clickedAt and is marked first, which the webhook dispatcher and the
// analytics counters use; a bot's hit is recorded and marked botFiltered,
// and changes nothing else. In privacy mode the visitor's address, agent
// and referer are used to classify and then forgotten.
func (s *Service) decideHit(ctx context.Context, h trackHit) func(e *store.Email) (map[string]any, *store.Event, error) {
	return func(e *store.Email) (map[string]any, *store.Event, error) {
		v := h.visitor
		if e.Hits >= maxHitEvents {
			return nil, nil, errHitsCapped
		}
		data := map[string]string{}
		evType, field, seen := store.EventOpened, store.FieldOpenedAt, e.OpenedAt != nil
		if h.kind == tracking.HitOpen && !e.TrackOpens {
			return nil, nil, errNoSuchLink // a pixel id is the email's: only a tracked one has a pixel
		}
		if h.kind == tracking.HitClick {
			if h.index < 0 || h.index >= len(e.Links) {
				return nil, nil, errNoSuchLink
			}
			data[store.DataLinkURL] = e.Links[h.index]
			data[store.DataLinkIndex] = strconv.Itoa(h.index)
			evType, field, seen = store.EventClicked, store.FieldClickedAt, e.ClickedAt != nil
		}
		st, err := s.settings.TrackingSettings(ctx, e.AccountID, pipeline.DomainOf(e.FromAddress))
		if err != nil {
			return nil, nil, err
		}
		at := h.at.UTC()
		ip, _ := netip.ParseAddr(v.IP)
		verdict := tracking.Classifier{PrefetchWindow: s.opt.BotWindow}.Classify(tracking.Hit{
			Kind: h.kind, Method: v.Method, UserAgent: v.UserAgent, IP: ip, SinceDelivery: sinceDelivery(e, at),
		})
		if !privacyMode(st) {
			if v.IP != "" {
				data["ip"] = v.IP
			}
			if v.UserAgent != "" {
				data["userAgent"] = v.UserAgent
			}
			if v.Referer != "" && h.kind == tracking.HitClick {
				data["referer"] = v.Referer
			}
		}
		fields := map[string]any{store.FieldHits: e.Hits + 1}
		switch {
		case verdict.BotFiltered:
			data[store.DataBotFiltered] = "true"
			data[store.DataFilterRule] = verdict.Rule
		default:
			if verdict.Proxied {
				data[store.DataProxied] = "true"
				data[store.DataMachineOpen] = verdict.MachineOpen
				data[store.DataFilterRule] = verdict.Rule
			}
			if !seen {
				fields[field] = store.FormatTime(at)
				data[store.DataFirst] = "true"
			}
			// The first open a person made, which Apple's opens at
			// delivery must not hide from the webhooks.
			if h.kind == tracking.HitOpen && verdict.MachineOpen != "apple_mpp" && e.PersonOpenedAt == nil {
				fields[store.FieldPersonOpenedAt] = store.FormatTime(at)
				data[store.DataFirstPerson] = "true"
			}
		}
		return fields, &store.Event{Type: evType, Timestamp: at, AccountID: e.AccountID, Data: data}, nil
	}
}

// sinceDelivery is the time from e's delivery to now. Test-mode mail is
// never delivered: its submission counts as the delivery. Live mail that is
// not delivered yet gives 0: only a machine that saw it in transit can
// fetch its links.
func sinceDelivery(e *store.Email, now time.Time) time.Duration {
	switch {
	case e.DeliveredAt != nil:
		return now.Sub(*e.DeliveredAt)
	case e.Mode == store.ModeTest && e.SentAt != nil:
		return now.Sub(*e.SentAt)
	}
	return 0
}
