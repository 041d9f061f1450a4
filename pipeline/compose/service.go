// Package compose owns the REST way in: a request described by fields
// (POST /v1/emails and its batch) becomes a MIME message — stored templates
// and their language, attachments given inline or fetched, the text part
// made from the HTML — and is handed to pipeline.Submit, as an SMTP DATA
// is. It also administers the templates.
package compose

import (
	"time"

	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// Options configure a Service.
type Options struct {
	// Fetcher downloads attachment paths; nil refuses them.
	Fetcher Fetcher
	Now     func() time.Time
}

// Service composes and submits REST sends. It is safe for concurrent use.
type Service struct {
	opt   Options
	store *store.Store
	sub   *pipeline.Service
}

// New returns the Service that composes into sub.
func New(st *store.Store, sub *pipeline.Service, opt Options) *Service {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return &Service{opt: opt, store: st, sub: sub}
}
