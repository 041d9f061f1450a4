// Package engagement owns what happens after a send: the tracking hits
// (opens and clicks, classified and recorded in batches), the tracking
// settings that decide what is tracked, and the analytics built from the
// events. Which tracking a submission gets, and how its MIME is rewritten,
// is decided at submission (pipeline/tracking.go, package tracking).
package engagement

import (
	"context"
	"log/slog"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/ttlcache"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
	"github.com/pigeonpost/pigeonpost/tracking"
)

// Settings is what engagement needs of the submission's caches: the
// tracking settings as mail from a domain gets them, and the way to say
// they changed in every process.
type Settings interface {
	TrackingSettings(ctx context.Context, accountID, domain string) (store.SendingTracking, error)
	TrackingChanged(ctx context.Context, accountID string)
}

// Domains finds one of the account's sending domains for a key of full
// permission (account.Service implements it): the settings of a domain are
// the domain owner's to see and change.
type Domains interface {
	Domain(ctx context.Context, k *store.Key, id string) (*store.Domain, error)
}

// HostResolver looks up the CNAME of a custom tracking domain.
type HostResolver interface {
	LookupCNAME(ctx context.Context, host string) (string, error)
}

// Options configure a Service.
type Options struct {
	PublicURL   string        // base of tracking URLs, no trailing slash
	CNAMETarget string        // host custom tracking domains must point at; "": PublicURL's host
	Lookup      HostResolver  // nil: tracking domains cannot be verified
	BotWindow   time.Duration // hits this soon after delivery are a gateway's prefetch; 0: rule off
	CacheTTL    time.Duration // how long an email's links are reused; 0 disables the cache
	// MaxHitsPerIPPerMinute is how many tracking hits one client address
	// may have recorded a minute (iprate.go); 0: no limit.
	MaxHitsPerIPPerMinute int
	// LimitPrivateHits applies that limit to loopback and private
	// addresses too, not only to public ones.
	LimitPrivateHits bool
	Now              func() time.Time
	Logger           *slog.Logger
	Metrics          *Metrics
}

// Service records tracking hits and serves tracking settings and
// analytics. It is safe for concurrent use.
type Service struct {
	opt      Options
	store    *store.Store
	settings Settings
	domains  Domains
	signer   *tracking.Signer
	metrics  *Metrics
	links    *ttlcache.Cache[[]string] // the tracked links of recently clicked emails, by email id
	hits     []chan trackHit           // tracking hits waiting to be recorded, by recorder (hits.go)
	ipRate   *ipLimiter                // nil: no limit
}

// New returns the Service over st. signer checks click ids: it must be the
// one the submission signs them with.
func New(st *store.Store, settings Settings, domains Domains, signer *tracking.Signer, opt Options) *Service {
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
		opt:      opt,
		store:    st,
		settings: settings,
		domains:  domains,
		signer:   signer,
		metrics:  opt.Metrics,
		links:    ttlcache.New[[]string](opt.CacheTTL),
		hits:     newHitQueues(),
		ipRate:   newIPLimiter(opt.MaxHitsPerIPPerMinute, opt.LimitPrivateHits),
	}
}
