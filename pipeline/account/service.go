// Package account owns what an account administers and reads: API keys,
// sending domains (with their DKIM keys and DNS checks), suppressions,
// webhook endpoints, and the read models of its mail (one email, its
// content and events, the email and event lists) with the cancelling of a
// scheduled send. The submission itself is package pipeline's.
package account

import (
	"context"
	"time"

	"github.com/pigeonpost/pigeonpost/pipeline/store"
	"github.com/pigeonpost/pigeonpost/pipeline/webhooks"
	"github.com/pigeonpost/pigeonpost/tracking"
)

// Changes is how a change reaches the caches of the submission in every
// process (pipeline.Service implements it): a revoked key must stop working
// at once, everywhere.
type Changes interface {
	KeyChanged(ctx context.Context, keyID string)
	DomainChanged(ctx context.Context, accountID, name string)
}

// Renderer makes an email's copy from the body stored for it, as delivery
// does (pipeline.Service implements it): the recipient's own tracking.
type Renderer interface {
	Render(e *store.Email, stored []byte) ([]byte, tracking.Result)
}

// TXTResolver looks up TXT records for domain verification.
type TXTResolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// HostResolver looks up the addresses of webhook endpoint hosts through
// the configured resolver (dns.resolver).
type HostResolver interface {
	LookupHost(ctx context.Context, host string) ([]string, error)
}

// Options configure a Service.
type Options struct {
	// MonthlyEmails is the monthly email limit of an account without its
	// own (limits.monthly_emails); 0: none.
	MonthlyEmails int64
	DKIMSelector  string
	SPFInclude    string
	Resolver      TXTResolver
	Lookup        HostResolver       // nil: webhook hosts are not resolved when registered
	WebhookURLs   webhooks.URLPolicy // which webhook endpoint URLs are accepted
	Now           func() time.Time
}

// Service administers accounts. It is safe for concurrent use.
type Service struct {
	opt     Options
	store   *store.Store
	changes Changes
	render  Renderer
}

// New returns the Service over st. When changes is a Renderer too (the
// pipeline.Service is), the content of an email is rendered with it.
func New(st *store.Store, changes Changes, opt Options) *Service {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	s := &Service{opt: opt, store: st, changes: changes}
	s.render, _ = changes.(Renderer)
	return s
}
