package engagement

import (
	"context"
	"errors"
	"net/url"
	"strings"

	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// Tracking settings: the account's defaults (GET/PATCH /v1/tracking/defaults)
// and each sending domain's overrides (PUT /v1/domains/:id/tracking). What a
// message asks for (REST tracking options or X-SP-Track-* headers) is
// granted only as far as both allow:
//
//	account trackingEnabled false  → no tracking at all; asking gets a warning
//	domain openTracking false      → no pixel for mail from that domain; asking gets a warning
//	domain clickTracking false     → no link rewriting for that domain; asking gets a warning
//	privacy mode                   → the domain's privacyMode when set, else the account's
//
// Tracking stays opt-in per message: settings can only take it away.

// TrackingDefaults are an account's tracking settings as the API shows them.
type TrackingDefaults = store.TrackingSettings

// TrackingDefaultsPatch changes the settings that are not nil.
type TrackingDefaultsPatch struct {
	TrackingEnabled     *bool
	PrivacyMode         *bool
	WebhookOnEveryOpen  *bool
	WebhookOnEveryClick *bool
	PixelPlacement      *string
}

// TrackingDefaults returns the account's tracking settings.
func (s *Service) TrackingDefaults(ctx context.Context, k *store.Key) (TrackingDefaults, error) {
	if err := pipeline.RequirePermission(k, store.PermissionFull); err != nil {
		return TrackingDefaults{}, err
	}
	ts, err := s.store.TrackingSettings(ctx, k.AccountID)
	if err != nil {
		return TrackingDefaults{}, pipeline.StorageError(err)
	}
	return ts, nil
}

// UpdateTrackingDefaults applies p and returns the settings that result.
func (s *Service) UpdateTrackingDefaults(ctx context.Context, k *store.Key, p TrackingDefaultsPatch) (TrackingDefaults, error) {
	if err := pipeline.RequireAdmin(k); err != nil {
		return TrackingDefaults{}, err
	}
	fields := map[string]any{}
	set := func(name string, v *bool) {
		if v != nil {
			fields[name] = *v
		}
	}
	set(store.SettingTrackingEnabled, p.TrackingEnabled)
	set(store.SettingPrivacyMode, p.PrivacyMode)
	set(store.SettingWebhookOnEveryOpen, p.WebhookOnEveryOpen)
	set(store.SettingWebhookOnEveryClick, p.WebhookOnEveryClick)
	if p.PixelPlacement != nil {
		if *p.PixelPlacement != store.PixelBottom && *p.PixelPlacement != store.PixelTop {
			return TrackingDefaults{}, pipeline.ErrInvalid.With(`pixelPlacement: must be "bottom" or "top"`)
		}
		fields[store.SettingPixelPlacement] = *p.PixelPlacement
	}
	defer s.settings.TrackingChanged(ctx, k.AccountID)
	if err := s.store.PatchTrackingSettings(ctx, k.AccountID, fields); err != nil {
		return TrackingDefaults{}, pipeline.StorageError(err)
	}
	return s.TrackingDefaults(ctx, k)
}

// DomainTracking is a sending domain's tracking configuration as the API
// shows it.
type DomainTracking struct {
	DomainID       string
	Domain         string
	OpenTracking   bool
	ClickTracking  bool
	PrivacyMode    *bool // null: the account's setting applies
	TrackingDomain *string
	// TrackingDomainStatus is pending, verified or failed; null without a tracking domain.
	TrackingDomainStatus *store.VerifyStatus
	DNSRecord            *store.DNSRecord // the CNAME to publish
}

// DomainTrackingInput is the body of PUT /v1/domains/:id/tracking; a
// missing openTracking or clickTracking means true (allowed).
type DomainTrackingInput struct {
	OpenTracking  *bool
	ClickTracking *bool
	PrivacyMode   *bool
}

// DomainTracking returns the tracking configuration of one of the account's domains.
func (s *Service) DomainTracking(ctx context.Context, k *store.Key, domainID string) (*DomainTracking, error) {
	d, err := s.domains.Domain(ctx, k, domainID)
	if err != nil {
		return nil, err
	}
	dt, td, err := s.store.DomainTrackingFor(ctx, k.AccountID, d)
	if err != nil {
		return nil, pipeline.StorageError(err)
	}
	return s.domainTrackingView(d, dt, td), nil
}

func (s *Service) domainTrackingView(d *store.Domain, dt *store.DomainTracking, td *store.TrackingDomain) *DomainTracking {
	v := &DomainTracking{DomainID: d.ID, Domain: d.Name, OpenTracking: true, ClickTracking: true}
	if dt != nil {
		v.OpenTracking, v.ClickTracking, v.PrivacyMode = dt.OpenTracking, dt.ClickTracking, dt.PrivacyMode
	}
	if td != nil {
		host, status := td.Host, td.Status
		v.TrackingDomain, v.TrackingDomainStatus = &host, &status
		v.DNSRecord = &store.DNSRecord{Type: "CNAME", Name: td.Host, Value: s.cnameTarget(), Status: td.Status, Required: true}
	}
	return v
}

// PutDomainTracking replaces the tracking overrides of one of the account's domains.
func (s *Service) PutDomainTracking(ctx context.Context, k *store.Key, domainID string, in DomainTrackingInput) (*DomainTracking, error) {
	if err := pipeline.RequireAdmin(k); err != nil { // tracking shapes live mail
		return nil, err
	}
	d, err := s.domains.Domain(ctx, k, domainID)
	if err != nil {
		return nil, err
	}
	dt := &store.DomainTracking{OpenTracking: true, ClickTracking: true, PrivacyMode: in.PrivacyMode}
	if in.OpenTracking != nil {
		dt.OpenTracking = *in.OpenTracking
	}
	if in.ClickTracking != nil {
		dt.ClickTracking = *in.ClickTracking
	}
	defer s.settings.TrackingChanged(ctx, k.AccountID)
	if err := s.store.PutDomainTracking(ctx, k.AccountID, d, dt); err != nil {
		return nil, pipeline.StorageError(err)
	}
	return s.DomainTracking(ctx, k, domainID)
}

// cnameTarget is the host that custom tracking domains must be a CNAME of:
// Options.CNAMETarget, else the host of Options.PublicURL.
func (s *Service) cnameTarget() string {
	if s.opt.CNAMETarget != "" {
		return strings.ToLower(strings.TrimSuffix(s.opt.CNAMETarget, "."))
	}
	u, err := url.Parse(s.opt.PublicURL)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Hostname())
}

// SetTrackingDomain sets host as the custom tracking domain of one of the
// account's domains, pending until VerifyTrackingDomain finds its CNAME. It
// must be the domain itself or a subdomain of it: links then point at the
// sender's own domain, and no account can claim another's name.
func (s *Service) SetTrackingDomain(ctx context.Context, k *store.Key, domainID, host string) (*DomainTracking, error) {
	if err := pipeline.RequireAdmin(k); err != nil { // tracking shapes live mail
		return nil, err
	}
	d, err := s.domains.Domain(ctx, k, domainID)
	if err != nil {
		return nil, err
	}
	host = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(host)), ".")
	if !pipeline.ValidDomainName(host) {
		return nil, pipeline.ErrInvalid.With("trackingDomain: " + pipeline.Quote(host) + " is not a valid host name")
	}
	if host != d.Name && !strings.HasSuffix(host, "."+d.Name) {
		return nil, pipeline.ErrInvalid.With("trackingDomain: must be " + d.Name + " or a subdomain of it, such as t." + d.Name)
	}
	if host == s.cnameTarget() {
		return nil, pipeline.ErrInvalid.With("trackingDomain: must be a name of yours that points at " + s.cnameTarget())
	}
	td := &store.TrackingDomain{Host: host, Status: store.VerifyPending}
	defer s.settings.TrackingChanged(ctx, k.AccountID)
	if err := s.store.PutTrackingDomain(ctx, k.AccountID, d, td); err != nil {
		return nil, pipeline.StorageError(err)
	}
	return s.DomainTracking(ctx, k, domainID)
}

// VerifyTrackingDomain looks up the CNAME of the domain's tracking domain
// through the configured resolver and marks it verified when it points at
// the tracking host. Only a verified tracking domain is used in URLs.
func (s *Service) VerifyTrackingDomain(ctx context.Context, k *store.Key, domainID string) (*DomainTracking, error) {
	if err := pipeline.RequireAdmin(k); err != nil { // tracking shapes live mail
		return nil, err
	}
	d, err := s.domains.Domain(ctx, k, domainID)
	if err != nil {
		return nil, err
	}
	_, td, err := s.store.DomainTrackingFor(ctx, k.AccountID, d)
	if err != nil {
		return nil, pipeline.StorageError(err)
	}
	if td == nil {
		return nil, pipeline.ErrConflict.With("no tracking domain is set for " + d.Name + "; set one with POST /v1/domains/" + d.ID + "/tracking/set-domain")
	}
	if s.opt.Lookup == nil {
		return nil, pipeline.ErrUnavailable.WithCause(errors.New("no resolver configured for CNAME lookups"))
	}
	now := s.opt.Now().UTC()
	target, err := s.opt.Lookup.LookupCNAME(ctx, td.Host)
	td.CheckedAt = &now
	td.Status = store.VerifyFailed
	if err == nil && strings.EqualFold(strings.TrimSuffix(target, "."), s.cnameTarget()) {
		td.Status = store.VerifyVerified
		td.VerifiedAt = &now
	} else if err != nil {
		s.opt.Logger.Info("tracking domain CNAME lookup failed", "host", td.Host, "err", err)
	}
	defer s.settings.TrackingChanged(ctx, k.AccountID)
	if err := s.store.PutTrackingDomain(ctx, k.AccountID, d, td); err != nil {
		return nil, pipeline.StorageError(err)
	}
	return s.DomainTracking(ctx, k, domainID)
}

// privacyMode reports whether hits on mail with these settings must be
// recorded without IP address, user agent or referer.
func privacyMode(st store.SendingTracking) bool {
	if st.Domain != nil && st.Domain.PrivacyMode != nil {
		return *st.Domain.PrivacyMode
	}
	return st.Account.PrivacyMode
}
