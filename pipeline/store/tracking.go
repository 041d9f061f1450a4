package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// ---- tracking settings ----

// Pixel placements.
const (
	PixelBottom = "bottom"
	PixelTop    = "top"
)

// TrackingSettings are an account's tracking defaults. Stored as a hash
// whose fields are the JSON names; a missing field has its default.
type TrackingSettings struct {
	TrackingEnabled     bool   `json:"trackingEnabled"`     // master switch; default true
	PrivacyMode         bool   `json:"privacyMode"`         // no IP, user agent or referer stored
	WebhookOnEveryOpen  bool   `json:"webhookOnEveryOpen"`  // else only the first open fires email.opened
	WebhookOnEveryClick bool   `json:"webhookOnEveryClick"` // else only the first click fires email.clicked
	PixelPlacement      string `json:"pixelPlacement"`      // bottom (default) or top
}

// Field names of the settings hash.
const (
	SettingTrackingEnabled     = "trackingEnabled"
	SettingPrivacyMode         = "privacyMode"
	SettingWebhookOnEveryOpen  = "webhookOnEveryOpen"
	SettingWebhookOnEveryClick = "webhookOnEveryClick"
	SettingPixelPlacement      = "pixelPlacement"
)

func trackingSettingsFromHash(m map[string]string) TrackingSettings {
	ts := TrackingSettings{TrackingEnabled: m[SettingTrackingEnabled] != "0", PixelPlacement: PixelBottom}
	ts.PrivacyMode = m[SettingPrivacyMode] == "1"
	ts.WebhookOnEveryOpen = m[SettingWebhookOnEveryOpen] == "1"
	ts.WebhookOnEveryClick = m[SettingWebhookOnEveryClick] == "1"
	if m[SettingPixelPlacement] == PixelTop {
		ts.PixelPlacement = PixelTop
	}
	return ts
}

// TrackingSettings returns the account's tracking defaults.
func (s *Store) TrackingSettings(ctx context.Context, accountID string) (TrackingSettings, error) {
	m, err := s.rdb.HGetAll(ctx, TrackingSettingsKey(accountID)).Result()
	if err != nil {
		return TrackingSettings{}, err
	}
	return trackingSettingsFromHash(m), nil
}

// PatchTrackingSettings sets the given settings (booleans, or a placement
// string) and leaves the others as they are, in one command, so that two
// concurrent PATCHes of different settings both apply.
func (s *Store) PatchTrackingSettings(ctx context.Context, accountID string, fields map[string]any) error {
	if len(fields) == 0 {
		return nil
	}
	values := make(map[string]any, len(fields))
	for k, v := range fields {
		if b, ok := v.(bool); ok {
			values[k] = boolField(b)
		} else {
			values[k] = v
		}
	}
	return s.rdb.HSet(ctx, TrackingSettingsKey(accountID), values).Err()
}

// DomainTracking are the tracking settings of one sending domain, which
// override the account's.
type DomainTracking struct {
	DomainID      string `json:"domainId"` // the settings apply only to the domain record with this id
	OpenTracking  bool   `json:"openTracking"`
	ClickTracking bool   `json:"clickTracking"`
	PrivacyMode   *bool  `json:"privacyMode"` // nil: the account's setting
}

// TrackingDomain is a domain's custom host for pixel and click URLs.
type TrackingDomain struct {
	DomainID   string       `json:"domainId"`
	Host       string       `json:"trackingDomain"`
	Status     VerifyStatus `json:"status"`
	CheckedAt  *time.Time   `json:"checkedAt"`
	VerifiedAt *time.Time   `json:"verifiedAt"`
}

// Verified reports whether the host may be used in tracking URLs.
func (t *TrackingDomain) Verified() bool { return t != nil && t.Status == VerifyVerified }

// Fields of the per-domain tracking hash: the domain name holds its
// DomainTracking, "host:" + name its TrackingDomain.
func domainTrackingField(name string) string { return name }
func trackingHostField(name string) string   { return "host:" + name }

// DomainTrackingFor returns the tracking overrides and the custom tracking
// domain of the account's sending domain d (either may be nil), ignoring
// records left from an earlier domain of the same name.
func (s *Store) DomainTrackingFor(ctx context.Context, accountID string, d *Domain) (*DomainTracking, *TrackingDomain, error) {
	return s.domainTracking(ctx, accountID, d.Name, d.ID)
}

func (s *Store) domainTracking(ctx context.Context, accountID, name, domainID string) (*DomainTracking, *TrackingDomain, error) {
	vals, err := s.rdb.HMGet(ctx, DomainTrackingKey(accountID), domainTrackingField(name), trackingHostField(name)).Result()
	if err != nil {
		return nil, nil, err
	}
	var dt *DomainTracking
	if raw, ok := vals[0].(string); ok {
		dt = new(DomainTracking)
		if err := json.Unmarshal([]byte(raw), dt); err != nil {
			return nil, nil, fmt.Errorf("decode domain tracking: %w", err)
		}
		if domainID != "" && dt.DomainID != domainID {
			dt = nil
		}
	}
	var td *TrackingDomain
	if raw, ok := vals[1].(string); ok {
		td = new(TrackingDomain)
		if err := json.Unmarshal([]byte(raw), td); err != nil {
			return nil, nil, fmt.Errorf("decode tracking domain: %w", err)
		}
		if domainID != "" && td.DomainID != domainID {
			td = nil
		}
	}
	return dt, td, nil
}

// PutDomainTracking stores the tracking overrides of the account's domain d.
func (s *Store) PutDomainTracking(ctx context.Context, accountID string, d *Domain, dt *DomainTracking) error {
	dt.DomainID = d.ID
	return s.rdb.HSet(ctx, DomainTrackingKey(accountID), domainTrackingField(d.Name), mustJSON(dt)).Err()
}

// PutTrackingDomain stores the custom tracking domain of the account's domain d.
func (s *Store) PutTrackingDomain(ctx context.Context, accountID string, d *Domain, td *TrackingDomain) error {
	td.DomainID = d.ID
	return s.rdb.HSet(ctx, DomainTrackingKey(accountID), trackingHostField(d.Name), mustJSON(td)).Err()
}

// SendingTracking is everything Submit and the tracking endpoints need to
// know about an account's tracking for mail from one domain.
type SendingTracking struct {
	Account TrackingSettings
	Domain  *DomainTracking // nil: no overrides
	Host    *TrackingDomain // nil: no custom tracking domain
}

// TrackingFor reads the account's settings and the overrides of its domain
// called domainName, in one round trip. Overrides are used only if they
// were made for the domain record that exists now.
func (s *Store) TrackingFor(ctx context.Context, accountID, domainName string) (SendingTracking, error) {
	var settings *redis.MapStringStringCmd
	var domain *redis.StringCmd
	var overrides *redis.SliceCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		settings = p.HGetAll(ctx, TrackingSettingsKey(accountID))
		domain = p.HGet(ctx, DomainsKey(accountID), domainName)
		overrides = p.HMGet(ctx, DomainTrackingKey(accountID), domainTrackingField(domainName), trackingHostField(domainName))
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return SendingTracking{}, err
	}
	st := SendingTracking{Account: trackingSettingsFromHash(settings.Val())}
	if domain.Err() != nil {
		return st, nil // no such domain (test-mode keys send from any domain): account settings only
	}
	d, err := decodeDomain(domain.Val())
	if err != nil {
		return SendingTracking{}, err
	}
	vals := overrides.Val()
	if raw, ok := vals[0].(string); ok {
		var dt DomainTracking
		if json.Unmarshal([]byte(raw), &dt) == nil && dt.DomainID == d.ID {
			st.Domain = &dt
		}
	}
	if raw, ok := vals[1].(string); ok {
		var td TrackingDomain
		if json.Unmarshal([]byte(raw), &td) == nil && td.DomainID == d.ID {
			st.Host = &td
		}
	}
	return st, nil
}

// ---- tracking hits ----

// Keys of the data of opened and clicked events that the pipeline writes and
// the analytics counters and the webhook dispatcher read.
const (
	DataFirst       = "first"       // "true" on the hit that set openedAt / clickedAt
	DataFirstPerson = "firstPerson" // "true" on the open that set personOpenedAt
	DataBotFiltered = "botFiltered" // "true": a bot's hit; not counted, no webhook
	DataFilterRule  = "filterRule"  // the rule that matched (tracking/bots.go): a bot's, or a proxy's
	DataProxied     = "proxied"     // "true": fetched through an image proxy
	DataMachineOpen = "machineOpen" // the proxy's kind: apple_mpp, google_image_proxy, yahoo_mail_proxy
	DataLinkURL     = "linkUrl"     // a click's destination
	DataLinkIndex   = "linkIndex"   // a click's link index, in decimal
)

// MachineEvent reports an open or click made by a machine rather than a
// person: a bot's hit (a scanner, a prefetch), or an open by Apple Mail
// Privacy Protection, which fetches every image whether or not anyone
// reads the mail. Image proxies that fetch when the mail is opened
// (Gmail's, Yahoo's) stand for a person.
func MachineEvent(ev *Event) bool {
	return ev.Data[DataBotFiltered] == "true" || ev.Data[DataMachineOpen] == "apple_mpp"
}

// ErrContention is returned when records kept changing under TrackHits.
var ErrContention = errors.New("records changed concurrently too many times")

// A Hit is one hit of a tracking endpoint, for TrackHits. Decide gets the
// email's current record, its hitFields only, and returns the fields to set
// and the event to record (nil event: record nothing).
type Hit struct {
	EmailID string
	Decide  func(e *Email) (map[string]any, *Event, error)
}

// hitFields are the fields of an email record that a hit's Decide sees:
// what classifies the hit and makes its event. Every hit reads them, so not
// the whole record (subject, tags, metadata…).
var hitFields = []string{"id", "accountId", "mode", "fromAddress", "trackOpens", FieldLinks, FieldSentAt, FieldDeliveredAt,
	FieldOpenedAt, FieldPersonOpenedAt, FieldClickedAt, FieldHits}

// maxHitAttempts bounds how often TrackHits reruns a batch whose records
// changed under it.
const maxHitAttempts = 10

// TrackHits records hits, in order, in one MULTI that runs only if none of
// their email records changed since they were read (WATCH), else the whole
// batch is decided again. So of two simultaneous first opens, in this
// process or another, exactly one sees openedAt unset; and a hit sees the
// fields that the hits before it in the batch set. It returns one error a
// hit (ErrNotFound for an email that does not exist, or Decide's error;
// such hits record nothing) and the error of the batch.
func (s *Store) TrackHits(ctx context.Context, hits []Hit) ([]error, error) {
	var keys []string
	seen := map[string]bool{}
	for _, h := range hits {
		if k := EmailKey(h.EmailID); !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	errs := make([]error, len(hits))
	for range maxHitAttempts {
		err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			return s.trackHitsOnce(ctx, tx, keys, hits, errs)
		}, keys...)
		if !errors.Is(err, redis.TxFailedErr) {
			return errs, err
		}
	}
	return errs, ErrContention
}

// trackHitsOnce is one attempt of TrackHits inside WATCH of keys.
func (s *Store) trackHitsOnce(ctx context.Context, tx *redis.Tx, keys []string, hits []Hit, errs []error) error {
	reads := make(map[string]*redis.SliceCmd, len(keys))
	if _, err := tx.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			reads[k] = p.HMGet(ctx, k, hitFields...)
		}
		return nil
	}); err != nil {
		return err
	}
	records := make(map[string]map[string]string, len(keys))
	for k, c := range reads {
		m := make(map[string]string, len(hitFields))
		for i, v := range c.Val() {
			if s, ok := v.(string); ok {
				m[hitFields[i]] = s
			}
		}
		if m["id"] != "" {
			records[k] = m
		}
	}
	type write struct {
		key    string
		fields map[string]any
		ev     *Event
	}
	var writes []write
	parsed := map[string]*Email{} // reparsed only after a hit of the batch set fields
	for i, h := range hits {
		key := EmailKey(h.EmailID)
		m := records[key]
		if m == nil {
			errs[i] = ErrNotFound
			continue
		}
		e := parsed[key]
		if e == nil {
			e = emailFromHash(m)
			parsed[key] = e
		}
		fields, ev, err := h.Decide(e)
		errs[i] = err
		if err != nil || ev == nil {
			continue
		}
		if len(fields) > 0 {
			for f, v := range fields {
				m[f] = fmt.Sprint(v)
			}
			delete(parsed, key)
		}
		ev.EmailID = h.EmailID
		writes = append(writes, write{key: key, fields: fields, ev: ev})
	}
	if len(writes) == 0 {
		return nil
	}
	_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
		evs := make([]*Event, len(writes))
		for i, w := range writes {
			if len(w.fields) > 0 {
				p.HSet(ctx, w.key, w.fields)
			}
			evs[i] = w.ev
		}
		appendEvents(ctx, p, evs...)
		return nil
	})
	return err
}
