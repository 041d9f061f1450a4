package api

import (
	"time"

	"github.com/pigeonpost/pigeonpost/pipeline/account"
	"github.com/pigeonpost/pigeonpost/pipeline/engagement"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// The JSON bodies the API answers with, each built from the pipeline's
// values by a to… function, so that what a client sees is decided in api:
// a field added to a record in Redis never reaches a client by accident
// (the domain's private key, an account id). The answers of sends, emails,
// suppressions and templates sit beside their handlers; the rest are here.

// listJSON is every list answered whole: {"data": [...]}.
type listJSON[T any] struct {
	Data []T `json:"data"`
}

// pageJSON is every paginated list: data, nextCursor (null on the last
// page) and hasMore.
type pageJSON[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"nextCursor"`
	HasMore    bool    `json:"hasMore"`
}

// listOf converts every element of in; the list is [] rather than null
// when in is empty.
func listOf[S, T any](in []S, conv func(S) T) []T {
	out := make([]T, 0, len(in))
	for _, v := range in {
		out = append(out, conv(v))
	}
	return out
}

func toPage[T any](data []T, next string) pageJSON[T] {
	p := pageJSON[T]{Data: data, HasMore: next != ""}
	if next != "" {
		p.NextCursor = &next
	}
	return p
}

// deletedJSON answers a DELETE of a resource with an id. (Fields in the
// order the answers had when they were maps: alphabetical.)
type deletedJSON struct {
	Deleted bool   `json:"deleted"`
	ID      string `json:"id"`
}

// deletedAddressJSON answers the DELETE of a suppressed address.
type deletedAddressJSON struct {
	Deleted bool   `json:"deleted"`
	Email   string `json:"email"`
}

// cancelledJSON answers DELETE /v1/emails/:id/schedule.
type cancelledJSON struct {
	CancelledAt *time.Time   `json:"cancelledAt"`
	ID          string       `json:"id"`
	Status      store.Status `json:"status"`
}

// batchJSON answers POST /v1/emails/batch.
type batchJSON struct {
	Data    []batchItem  `json:"data"`
	Summary batchSummary `json:"summary"`
}

// healthJSON answers GET /healthz.
type healthJSON struct {
	Problems []string `json:"problems,omitempty"`
	Ready    bool     `json:"ready"`
	Redis    string   `json:"redis"` // ok, unreachable, or refusing writes (memory or disk full)
}

// eventJSON is one event of an email (GET /v1/emails/:id/events).
type eventJSON struct {
	Type      store.EventType   `json:"type"`
	Timestamp time.Time         `json:"timestamp"`
	EmailID   string            `json:"emailId"`
	Data      map[string]string `json:"data,omitempty"`
}

func toEventJSON(ev store.Event) eventJSON {
	return eventJSON{Type: ev.Type, Timestamp: ev.Timestamp, EmailID: ev.EmailID, Data: ev.Data}
}

// listedEventJSON is one event of the account's stream (GET /v1/events).
type listedEventJSON struct {
	ID        string            `json:"id"` // stream id: unique, ordered
	Type      store.EventType   `json:"type"`
	EmailID   string            `json:"emailId"`
	Timestamp time.Time         `json:"timestamp"`
	Data      map[string]string `json:"data,omitempty"`
}

func toEventPage(p *account.EventPage) pageJSON[listedEventJSON] {
	data := listOf(p.Data, func(ev account.ListedEvent) listedEventJSON {
		return listedEventJSON{ID: ev.ID, Type: ev.Type, EmailID: ev.EmailID, Timestamp: ev.Timestamp, Data: ev.Data}
	})
	// A page may hold fewer than the limit (even none) and still have a
	// cursor: each request scans a bounded number of events.
	return toPage(data, p.Next)
}

// dnsRecordJSON is a record a domain owner publishes.
type dnsRecordJSON struct {
	Type     string             `json:"type"`
	Name     string             `json:"name"`
	Value    string             `json:"value"`
	Status   store.VerifyStatus `json:"status"`
	Required bool               `json:"required"` // required records decide the domain's status; DMARC is advice
}

func toDNSRecordJSON(r store.DNSRecord) dnsRecordJSON {
	return dnsRecordJSON{Type: r.Type, Name: r.Name, Value: r.Value, Status: r.Status, Required: r.Required}
}

// domainJSON is a sending domain: never its DKIM private key.
type domainJSON struct {
	ID         string             `json:"id"`
	Name       string             `json:"name"`
	Status     store.VerifyStatus `json:"status"`
	DNSRecords []dnsRecordJSON    `json:"dnsRecords"`
	CreatedAt  time.Time          `json:"createdAt"`
	VerifiedAt *time.Time         `json:"verifiedAt"`
}

func toDomainJSON(d *store.Domain) domainJSON {
	return domainJSON{ID: d.ID, Name: d.Name, Status: d.Status, DNSRecords: listOf(d.DNSRecords, toDNSRecordJSON),
		CreatedAt: d.CreatedAt, VerifiedAt: d.VerifiedAt}
}

// keyJSON is an API key: its prefix and last four characters, never the key.
type keyJSON struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Mode       string     `json:"mode"`
	Permission string     `json:"permission"`
	Prefix     string     `json:"prefix"`
	LastFour   string     `json:"lastFour"`
	CreatedAt  time.Time  `json:"createdAt"`
	LastUsedAt *time.Time `json:"lastUsedAt"`
	DomainID   string     `json:"domainId,omitempty"`
}

func toKeyJSON(k *store.Key) keyJSON {
	return keyJSON{ID: k.ID, Name: k.Name, Mode: k.Mode, Permission: k.Permission, Prefix: k.Prefix, LastFour: k.Last4,
		CreatedAt: k.CreatedAt, LastUsedAt: k.LastUsedAt, DomainID: k.DomainID}
}

// createdKeyJSON answers the creation of a key: the key itself is in this
// answer only, since it is stored hashed.
type createdKeyJSON struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	Mode       string    `json:"mode"`
	Permission string    `json:"permission"`
	DomainID   string    `json:"domainId,omitempty"`
	CreatedAt  time.Time `json:"createdAt"`
	Key        string    `json:"key"`
}

// webhookJSON is an endpoint: the secret only in the answer to its creation.
type webhookJSON struct {
	ID            string    `json:"id"`
	URL           string    `json:"url"`
	Events        []string  `json:"events"`
	MachineEvents bool      `json:"machineEvents"`
	CreatedAt     time.Time `json:"createdAt"`
	Secret        string    `json:"secret,omitempty"`
}

func toWebhookJSON(wh *store.Webhook) webhookJSON {
	return webhookJSON{ID: wh.ID, URL: wh.URL, Events: wh.Events, MachineEvents: wh.MachineEvents, CreatedAt: wh.CreatedAt}
}

// failedWebhookJSON is a webhook delivery given up.
type failedWebhookJSON struct {
	ID         string    `json:"id"`
	EndpointID string    `json:"endpointId"`
	Event      string    `json:"event"`
	Attempts   int       `json:"attempts"`
	LastError  string    `json:"lastError"`
	CreatedAt  time.Time `json:"createdAt"`
	FailedAt   time.Time `json:"failedAt"`
}

func toFailedWebhookJSON(f store.FailedWebhook) failedWebhookJSON {
	return failedWebhookJSON{ID: f.ID, EndpointID: f.EndpointID, Event: f.Event, Attempts: f.Attempts,
		LastError: f.LastError, CreatedAt: f.CreatedAt, FailedAt: f.FailedAt}
}

// trackingDefaultsJSON are the account's tracking settings.
type trackingDefaultsJSON struct {
	TrackingEnabled     bool   `json:"trackingEnabled"`
	PrivacyMode         bool   `json:"privacyMode"`
	WebhookOnEveryOpen  bool   `json:"webhookOnEveryOpen"`
	WebhookOnEveryClick bool   `json:"webhookOnEveryClick"`
	PixelPlacement      string `json:"pixelPlacement"`
}

func toTrackingDefaultsJSON(ts engagement.TrackingDefaults) trackingDefaultsJSON {
	return trackingDefaultsJSON{TrackingEnabled: ts.TrackingEnabled, PrivacyMode: ts.PrivacyMode,
		WebhookOnEveryOpen: ts.WebhookOnEveryOpen, WebhookOnEveryClick: ts.WebhookOnEveryClick, PixelPlacement: ts.PixelPlacement}
}

// domainTrackingJSON is a sending domain's tracking configuration.
type domainTrackingJSON struct {
	DomainID             string              `json:"domainId"`
	Domain               string              `json:"domain"`
	OpenTracking         bool                `json:"openTracking"`
	ClickTracking        bool                `json:"clickTracking"`
	PrivacyMode          *bool               `json:"privacyMode"` // null: the account's setting applies
	TrackingDomain       *string             `json:"trackingDomain"`
	TrackingDomainStatus *store.VerifyStatus `json:"trackingDomainStatus"` // null without a tracking domain
	DNSRecord            *dnsRecordJSON      `json:"dnsRecord,omitempty"`  // the CNAME to publish
}

func toDomainTrackingJSON(dt *engagement.DomainTracking) domainTrackingJSON {
	out := domainTrackingJSON{DomainID: dt.DomainID, Domain: dt.Domain, OpenTracking: dt.OpenTracking,
		ClickTracking: dt.ClickTracking, PrivacyMode: dt.PrivacyMode, TrackingDomain: dt.TrackingDomain,
		TrackingDomainStatus: dt.TrackingDomainStatus}
	if dt.DNSRecord != nil {
		r := toDNSRecordJSON(*dt.DNSRecord)
		out.DNSRecord = &r
	}
	return out
}

// countsJSON are the analytics counters of a period.
type countsJSON struct {
	Sent               int64 `json:"sent"`
	Delivered          int64 `json:"delivered"`
	Deferred           int64 `json:"deferred"`
	Bounced            int64 `json:"bounced"`
	Failed             int64 `json:"failed"`
	Complained         int64 `json:"complained"`
	Opens              int64 `json:"opens"`
	UniqueOpens        int64 `json:"uniqueOpens"`
	ProxiedUniqueOpens int64 `json:"proxiedUniqueOpens"`
	MachineUniqueOpens int64 `json:"machineUniqueOpens"`
	Clicks             int64 `json:"clicks"`
	UniqueClicks       int64 `json:"uniqueClicks"`
	BotFilteredOpens   int64 `json:"botFilteredOpens"`
	BotFilteredClicks  int64 `json:"botFilteredClicks"`
	ClicksAfterExpiry  int64 `json:"clicksAfterExpiry"`
	RawOpens           int64 `json:"rawOpens"`
	RawClicks          int64 `json:"rawClicks"`
	HumanUniqueOpens   int64 `json:"humanUniqueOpens"`
}

func toCountsJSON(c engagement.Counts) countsJSON {
	return countsJSON{Sent: c.Sent, Delivered: c.Delivered, Deferred: c.Deferred, Bounced: c.Bounced, Failed: c.Failed,
		Complained: c.Complained, Opens: c.Opens, UniqueOpens: c.UniqueOpens, ProxiedUniqueOpens: c.ProxiedUniqueOpens,
		MachineUniqueOpens: c.MachineUniqueOpens, Clicks: c.Clicks, UniqueClicks: c.UniqueClicks,
		BotFilteredOpens: c.BotFilteredOpens, BotFilteredClicks: c.BotFilteredClicks, ClicksAfterExpiry: c.ClicksAfterExpiry,
		RawOpens: c.RawOpens(), RawClicks: c.RawClicks(), HumanUniqueOpens: c.HumanUniqueOpens()}
}

// analyticsJSON is the answer of GET /v1/analytics: the counters flat,
// then the rates and the daily counters.
type analyticsJSON struct {
	From   string  `json:"from"`
	To     string  `json:"to"`
	Domain *string `json:"domain"`
	Tag    *string `json:"tag"`
	countsJSON
	OpenRate      float64        `json:"openRate"`
	HumanOpenRate float64        `json:"humanOpenRate"`
	ClickRate     float64        `json:"clickRate"`
	BounceRate    float64        `json:"bounceRate"`
	Daily         []dayCountJSON `json:"daily"`
}

type dayCountJSON struct {
	Date string `json:"date"`
	countsJSON
}

func toAnalyticsJSON(a *engagement.Analytics) analyticsJSON {
	return analyticsJSON{From: a.From, To: a.To, Domain: a.Domain, Tag: a.Tag, countsJSON: toCountsJSON(a.Counts),
		OpenRate: a.OpenRate, HumanOpenRate: a.HumanOpenRate, ClickRate: a.ClickRate, BounceRate: a.BounceRate,
		Daily: listOf(a.Daily, func(d engagement.DayCounts) dayCountJSON {
			return dayCountJSON{Date: d.Date, countsJSON: toCountsJSON(d.Counts)}
		})}
}
