// Package pipelinetest builds the pipeline's parts over a test Redis, the
// way cmd/pigeonpost builds them over the configured one, for the tests of
// the packages that call them (api, smtpd) and the pipeline's external
// tests.
package pipelinetest

import (
	"cmp"
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/account"
	"github.com/pigeonpost/pigeonpost/pipeline/compose"
	"github.com/pigeonpost/pigeonpost/pipeline/contacts"
	"github.com/pigeonpost/pigeonpost/pipeline/engagement"
	"github.com/pigeonpost/pigeonpost/pipeline/feedback"
	"github.com/pigeonpost/pigeonpost/pipeline/reputation"
	"github.com/pigeonpost/pigeonpost/pipeline/sends"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
	"github.com/pigeonpost/pigeonpost/pipeline/webhooks"
	"github.com/pigeonpost/pigeonpost/tracking"
)

// Options configure the parts; zero values get test defaults.
type Options struct {
	Redis      redis.UniversalClient // nil: a fresh testkit Redis
	Secret     []byte                // the tracking secret; nil: "pipelinetest-secret"
	Pipeline   pipeline.Options      // Hostname gw.test, PublicURL https://t.test, a rate limit no test reaches
	Account    account.Options
	Compose    compose.Options
	Engagement engagement.Options // PublicURL: the pipeline's
	Contacts   contacts.Options
	Sends      sends.Options      // PublicURL: the pipeline's
	Reputation reputation.Options // zero: the configured defaults (auto-pause at 5 % bounces, 0.3 % complaints, 500 sends in 24 h)
}

// Parts are the services over one store.
type Parts struct {
	Redis      redis.UniversalClient
	Store      *store.Store
	Signer     *tracking.Signer
	Pipeline   *pipeline.Service
	Account    *account.Service
	Compose    *compose.Service
	Engagement *engagement.Service
	Contacts   *contacts.Service
	Sends      *sends.Service
	Reputation *reputation.Guard
	Feedback   *feedback.Service
	Webhooks   *webhooks.Replayer
}

// New builds the parts.
func New(t testing.TB, opt Options) *Parts {
	t.Helper()
	if opt.Redis == nil {
		opt.Redis = testkit.RedisClient(t)
	}
	if opt.Secret == nil {
		opt.Secret = []byte("pipelinetest-secret")
	}
	po := &opt.Pipeline
	if po.Hostname == "" {
		po.Hostname = "gw.test"
	}
	if po.PublicURL == "" {
		po.PublicURL = "https://t.test"
	}
	if po.RateLimit == (pipeline.RateLimit{}) {
		po.RateLimit = pipeline.RateLimit{PerSecond: 1_000_000, Burst: 1_000_000}
	}
	if opt.Engagement.PublicURL == "" {
		opt.Engagement.PublicURL = po.PublicURL
	}
	now := po.Now
	if now == nil {
		now = time.Now
	}
	st := store.New(opt.Redis, now)
	p := &Parts{Redis: opt.Redis, Store: st, Signer: tracking.NewSigner(opt.Secret)}
	p.Pipeline = pipeline.New(st, p.Signer, opt.Pipeline)
	p.Account = account.New(st, p.Pipeline, opt.Account)
	p.Compose = compose.New(st, p.Pipeline, opt.Compose)
	p.Engagement = engagement.New(st, p.Pipeline, p.Account, p.Signer, opt.Engagement)
	p.Contacts = contacts.New(st, opt.Contacts)
	so := opt.Sends
	so.PublicURL = cmp.Or(so.PublicURL, po.PublicURL)
	p.Sends = sends.New(st, p.Pipeline, p.Compose, p.Contacts, p.Signer, so)
	ro := opt.Reputation
	if ro.Window == 0 {
		ro = reputation.Options{AutoPause: true, Window: 24 * time.Hour, MinVolume: 500, MaxBounceRate: 0.05, MaxComplaintRate: 0.003}
	}
	if ro.Now == nil {
		ro.Now = now
	}
	p.Reputation = reputation.New(st, ro)
	p.Feedback = feedback.New(st, p.Signer, p.Reputation, feedback.Options{Now: now})
	p.Webhooks = &webhooks.Replayer{Store: st, Now: now, Logger: po.Logger}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = p.Sends.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return p
}

// RecordHits runs the engagement's hit recorders until the test ends.
func (p *Parts) RecordHits(t testing.TB) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = p.Engagement.RecordHits(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// Key makes sure secret is a full-permission key of the named account.
func (p *Parts) Key(t testing.TB, accountName, secret string) *store.Key {
	t.Helper()
	k, err := p.Account.EnsureKey(context.Background(), accountName, secret)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
