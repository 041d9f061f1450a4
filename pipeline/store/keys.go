package store

import (
	"strconv"
	"strings"
)

// Every Redis key pigeonpost uses is built here, nowhere else.
//
// Keys that one atomic operation (MULTI/EXEC or a Lua script) touches
// together share a hash tag, the part in braces, so that they live in one
// Redis Cluster slot:
//
//	{q}, {qK.J} the mail, in shards (Shard): email records, messages (one
//	            stored MIME per submission) and their recipient counts,
//	            events, the delivery stream, the retry schedule, each
//	            account's email and sends indexes, batches and the queues of
//	            segments' sends. Submit persists and enqueues in one MULTI
//	            over the keys of one shard. Shard 0 is {q}, shard K ≥ 1
//	            {qK.J} (shardTags).
//	{shards}    the registry of the mail shards ever used (ShardsKey) and
//	            of the shard counts in use (ShardCountsKey).
//	{keys}      API key records, looked up by the SHA-256 of the key.
//	{acct:ID}   one account: its record, domains, suppressions, rate limit,
//	            templates, contacts and segments.
//	{settings}  process-wide settings such as the tracking secret.
//	{sessions}  the dashboard's login sessions.
//	{dest:NAME} one destination (an MX host or a provider group): its
//	            connection leases, message rate and suspension, which
//	            one script checks and takes together.
//	{dests}     the index of destinations that were suspended, limited or
//	            had mail deferred.
const prefix = "pp:"

const (
	keysTag     = prefix + "{keys}:"
	settingsTag = prefix + "{settings}:"
)

// Shard numbers one part of the mail keys: each shard has its own hash
// tag (shardTags), so in a Redis Cluster the shards spread over the
// masters, each with its own delivery stream, retry schedule and event
// stream. Shard 0 is the tag {q}, which all mail had before there were
// shards.
//
// The shard of an id that names mail (an email, a message, a batch) is in
// the id itself, whatever the configured number of shards: NewIDIn makes
// the ids of shard 0 as NewID always has (prefix_ and 26 base32
// characters) and appends "-q" and K in decimal for shard K ≥ 1
// ("em_…-q2"); ShardOf reads it back. Keys named by such an id take their
// tag from it; the others (streams, schedules, account indexes, counters)
// take the shard.
type Shard int

// MaxShards bounds the number of mail shards (redis.shards). Each shard
// a process reads holds a connection of its own while it waits for mail.
const MaxShards = 16

// shardTags are the shards' hash tags, chosen (by a search over suffixes)
// so that the slots of shards 0 … N-1 fall on N different masters of a
// cluster of N masters whose slots are split evenly (as redis-cli
// --cluster create does), for every N up to MaxShards: N shards on M
// masters spread as evenly as N/M allows when M divides N. TestShardTags
// checks it. Never change a tag: mail already stored is found by it.
var shardTags = [MaxShards]string{
	"q", "q1.103", "q2.402", "q3.460", "q4.63", "q5.636", "q6.648", "q7.360",
	"q8.19", "q9.174", "q10.188", "q11.123", "q12.73", "q13.810", "q14.12", "q15.136",
}

// shardSuffix separates an id from the number of its shard (K ≥ 1).
const shardSuffix = "-q"

// shardPrefixes are the shards' key prefixes, with their hash tags.
var shardPrefixes = func() (p [MaxShards]string) {
	for k, tag := range shardTags {
		p[k] = prefix + "{" + tag + "}:"
	}
	return p
}()

// tag is the shard's key prefix with its hash tag.
func (k Shard) tag() string { return shardPrefixes[k] }

// ShardOf returns the shard of the mail an id names (NewIDIn): 0 for an id
// without a valid shard suffix, as all ids made before there were shards.
func ShardOf(id string) Shard {
	i := strings.LastIndex(id, shardSuffix)
	if i < 0 {
		return 0
	}
	digits := id[i+len(shardSuffix):]
	if digits == "" || len(digits) > 2 || digits[0] == '0' {
		return 0
	}
	n := 0
	for _, c := range []byte(digits) {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + int(c-'0')
	}
	if n >= MaxShards {
		return 0
	}
	return Shard(n)
}

// NewIDIn returns a new id (NewID) of mail in shard k: ShardOf gives k back.
func NewIDIn(prefix string, k Shard) string {
	id := NewID(prefix)
	if k > 0 {
		id += shardSuffix + strconv.Itoa(int(k))
	}
	return id
}

// ShardsKey is the set of the mail shards ever used (their numbers): the
// consumers read each of them, so that mail in a shard that a smaller
// redis.shards no longer writes to drains. It has a tag of its own.
func ShardsKey() string { return prefix + "{shards}:used" }

// ShardCountsKey maps each redis.shards count that processes use to when
// one last said so (unix seconds): an idempotency key is looked up in the
// shard each recent count gives it (Store.IdemShards).
func ShardCountsKey() string { return prefix + "{shards}:counts" }

// StreamKey is shard k's delivery queue (a Redis Stream, consumer group "deliver").
func StreamKey(k Shard) string { return k.tag() + "stream" }

// AliveKey says that the queue consumer (delivery worker or webhook
// dispatcher) of that name is running, in shard k: it expires unless
// renewed, and the entries of a consumer without one are taken over at
// once. A consumer keeps one in each shard it reads, so that a shard's
// consumers are judged by that shard's keys alone.
func AliveKey(k Shard, consumer string) string { return k.tag() + "alive:" + consumer }

// HealthKey is written by every readiness check (it expires) in each shard
// in use: a submission needs Redis to take writes to the mail keys, not
// only to answer.
func HealthKey(k Shard) string { return k.tag() + "health" }

// RetryKey is shard k's sorted set of emails waiting for their next
// attempt (score: due time in ms).
func RetryKey(k Shard) string { return k.tag() + "retry" }

// idTag is the tag of the shard of the mail id names.
func idTag(id string) string { return ShardOf(id).tag() }

// EmailKey is the hash holding one email record.
func EmailKey(id string) string { return idTag(id) + "email:" + id }

// BodyKey holds the MIME of one email as it went out (before DKIM), with
// its tracking: the layout of records written before messages were stored
// once (MessageKey). Such records are still read, and released, by it.
func BodyKey(id string) string { return idTag(id) + "body:" + id }

// MessageKey holds the MIME of one submission as received (CRLF
// normalised, its header block edited, untracked), stored once for all of
// its recipients; each email record names it (Email.Message). Delivery
// and the content API render each recipient's tracking from it.
func MessageKey(id string) string { return idTag(id) + "msg:" + id }

// MessageRefsKey counts the emails of a message that are not final yet:
// the one that makes it 0 sets the message's retention (Store.release).
func MessageRefsKey(id string) string { return idTag(id) + "msg:" + id + ":refs" }

// EventsKey is the list of one email's events (JSON, oldest first).
func EventsKey(id string) string { return idTag(id) + "events:" + id }

// EventStreamKey is shard k's stream of every account's events (those of
// its emails; account events are in shard 0), read by the webhook
// dispatcher.
func EventStreamKey(k Shard) string { return k.tag() + "events" }

// AccountEventsKey is the stream of one account's events in shard k, for
// listing.
func AccountEventsKey(k Shard, accountID string) string {
	return k.tag() + "acct:" + accountID + ":events"
}

// AccountEmailsKey indexes an account's emails in shard k by creation time.
func AccountEmailsKey(k Shard, accountID string) string {
	return k.tag() + "acct:" + accountID + ":emails"
}

// AccountSendsKey indexes by creation time the account's emails in shard
// k that the sends API made (GET /v1/sends).
func AccountSendsKey(k Shard, accountID string) string {
	return k.tag() + "acct:" + accountID + ":sends"
}

// BatchKey is the hash of one batch of sends: its account, template,
// segment and size.
func BatchKey(batchID string) string { return idTag(batchID) + "batch:" + batchID }

// BatchEmailsKey indexes the emails of one batch by creation time.
func BatchEmailsKey(batchID string) string { return idTag(batchID) + "batch:" + batchID + ":emails" }

// FanOutsKey is the set of shard k's batches whose sends to a segment are
// still being made.
func FanOutsKey(k Shard) string { return k.tag() + "fanouts" }

// FanOutQueueKey lists the contact ids a segment's batch has still to send
// to; each chunk of sends takes its ids off in the MULTI that stores them.
func FanOutQueueKey(batchID string) string { return idTag(batchID) + "batch:" + batchID + ":queue" }

// FanOutLeaseKey holds the token of the process making a batch's sends.
func FanOutLeaseKey(batchID string) string { return idTag(batchID) + "batch:" + batchID + ":lease" }

// KeyByHashKey is the hash holding the API key whose SHA-256 is hashHex.
func KeyByHashKey(hashHex string) string { return keysTag + "hash:" + hashHex }

// SessionKey is the hash of one dashboard session (dashboard/), named by
// the SHA-256 (hex) of its cookie's token, so that a copy of Redis holds
// no usable cookie; it expires with the session.
func SessionKey(tokenHash string) string { return prefix + "{sessions}:" + tokenHash }

// KeyIDKey maps a key id to the SHA-256 of the key.
func KeyIDKey(keyID string) string { return keysTag + "id:" + keyID }

// AccountKeysKey is the set of an account's key ids.
func AccountKeysKey(accountID string) string { return keysTag + "acct:" + accountID }

// AccountsKey maps account names to ids.
func AccountsKey() string { return keysTag + "accounts" }

func accountTag(accountID string) string { return prefix + "{acct:" + accountID + "}:" }

// AccountKey is the hash holding one account's record and settings.
func AccountKey(accountID string) string { return accountTag(accountID) + "account" }

// DomainsKey maps domain names to domain records (JSON).
func DomainsKey(accountID string) string { return accountTag(accountID) + "domains" }

// SuppressionsKey maps suppressed addresses to the reason (JSON).
func SuppressionsKey(accountID string) string { return accountTag(accountID) + "suppressions" }

// RateKey holds the GCRA theoretical arrival time of an account's sends.
func RateKey(accountID string) string { return accountTag(accountID) + "rate" }

// UsageKey counts the emails an account sent in one calendar month
// (2006-01, UTC): the admit script charges it with the rate (RateKey).
func UsageKey(accountID, month string) string { return accountTag(accountID) + "usage:" + month }

// TrackingSecretKey holds the HMAC secret for tracking ids, generated once.
func TrackingSecretKey() string { return settingsTag + "tracking_secret" }

// IdempotencyKey holds one Idempotency-Key of an account: a pending marker
// while the first request runs, then its response for 24 h. digest is the
// SHA-256 (hex) of the operation and the client's key. It carries the tag
// of shard k (IdemShard), not the account's, so that a send stores its
// emails and its response in one MULTI: a crash after the emails are
// stored leaves the response too.
func IdempotencyKey(k Shard, accountID, digest string) string {
	return k.tag() + "idem:" + accountID + ":" + digest
}

// TemplatesKey maps an account's template ids to template records (JSON).
func TemplatesKey(accountID string) string { return accountTag(accountID) + "templates" }

// TemplateIndexKey orders an account's templates by creation: a sorted set
// of template ids scored by a creation sequence number (1, 2, 3 ...).
func TemplateIndexKey(accountID string) string { return accountTag(accountID) + "templates:index" }

// ---- contacts and segments (pipeline/contacts) ----

// ContactKey is the hash of one contact: its standard fields, its tags
// (JSON), its custom fields ("f:" + name) and its creation sequence number.
func ContactKey(accountID, id string) string { return accountTag(accountID) + "contact:" + id }

// ContactEmailsKey maps the lower-cased address of each of an account's
// contacts to the contact's id: an address is one contact.
func ContactEmailsKey(accountID string) string { return accountTag(accountID) + "contacts:email" }

// ContactIndexKey orders an account's contacts by creation: a sorted set of
// contact ids scored by a creation sequence number from ContactSeqKey.
func ContactIndexKey(accountID string) string { return accountTag(accountID) + "contacts:index" }

// ContactSeqKey is the counter that numbers an account's contacts.
func ContactSeqKey(accountID string) string { return accountTag(accountID) + "contacts:seq" }

// SegmentsKey maps an account's segment ids to segment records (JSON).
func SegmentsKey(accountID string) string { return accountTag(accountID) + "segments" }

// SegmentIndexKey orders an account's segments by creation, as
// TemplateIndexKey does templates.
func SegmentIndexKey(accountID string) string { return accountTag(accountID) + "segments:index" }

// ---- tracking, events, webhooks, analytics ----

// TrackingSettingsKey is the hash of an account's tracking defaults
// (trackingEnabled, privacyMode, webhookOnEveryOpen ...).
func TrackingSettingsKey(accountID string) string { return accountTag(accountID) + "tracking" }

// DomainTrackingKey maps an account's sending domain names to their
// tracking overrides, and "host:" + name to their custom tracking domain.
func DomainTrackingKey(accountID string) string { return accountTag(accountID) + "tracking_domains" }

// WebhooksKey maps an account's webhook endpoint ids to endpoints (JSON).
func WebhooksKey(accountID string) string { return accountTag(accountID) + "webhooks" }

// StatsKey is the hash of one account's analytics counters for one UTC day
// (2006-01-02) in shard k. It is in the mail's shard: the counters move in
// the MULTI that records the event; readers sum the shards.
func StatsKey(k Shard, accountID, day string) string {
	return k.tag() + "stats:" + accountID + ":" + day
}

// ReputationKey is the hash of one account's delivered, bounced and
// complained counts in one hour (ReputationHour), which the reputation
// guard sums over its window, in shard k. It is in the mail's shard: the
// counts move in the MULTI that records the event, as the analytics
// counters do; the guard sums the shards.
func ReputationKey(k Shard, accountID string, hour int64) string {
	return k.tag() + "rep:" + accountID + ":" + strconv.FormatInt(hour, 10)
}

// HeldKey is the sorted set of an account's emails in shard k held back
// from delivery while its sending is paused (score: when held, in ms).
func HeldKey(k Shard, accountID string) string { return k.tag() + "acct:" + accountID + ":held" }

// HeldAccountsKey is the set of accounts that have mail held back in shard
// k (HeldKey): delivery workers release it once their pause is lifted.
func HeldAccountsKey(k Shard) string { return k.tag() + "held" }

// {wh} holds the webhook delivery queue: pending deliveries, their schedule
// and the markers that make fan-out of one event idempotent. A delivery and
// its schedule entry change together in one MULTI.
const webhookTag = prefix + "{wh}:"

// WebhookDueKey is the sorted set of webhook delivery ids by next attempt
// time (ms); an entry being attempted is leased by moving its score ahead.
func WebhookDueKey() string { return webhookTag + "due" }

// WebhookDeliveryKey is the hash of one pending webhook delivery.
func WebhookDeliveryKey(id string) string { return webhookTag + "delivery:" + id }

// WebhookSeenKey marks an event stream entry whose deliveries are queued.
func WebhookSeenKey(streamID string) string { return webhookTag + "seen:" + streamID }

// WebhookFailedKey is the capped list of an account's deliveries that were
// given up, newest first (JSON), for operators and GET /v1/webhooks.
func WebhookFailedKey(accountID string) string { return webhookTag + "failed:" + accountID }

// WebhookAttemptsKey is the capped list of the latest attempts at an
// endpoint's deliveries, successes and failures, newest first (JSON), for
// GET /v1/webhooks/{id}/deliveries. It expires a week after the last one.
func WebhookAttemptsKey(accountID, endpointID string) string {
	return webhookTag + "attempts:" + accountID + ":" + endpointID
}

// WebhookIndexKey maps the ids (without "whmsg_") of the deliveries an
// account's events got on one UTC day (2006-01-02) to the stream id of
// their event: the delivery id is a hash, and a redelivery finds the event
// again by it. It expires after a week and a day.
func WebhookIndexKey(accountID, day string) string {
	return webhookTag + "ids:" + accountID + ":" + day
}

// WebhookReplayKey is held by the replay of one endpoint while it queues
// (its value: the replay id).
func WebhookReplayKey(endpointID string) string { return webhookTag + "replay:" + endpointID }

// WebhookReplayIDsKey is the set of the delivery ids the last replay of an
// endpoint queued, those not yet delivered or given up: no other replay of
// the endpoint starts while one is left.
func WebhookReplayIDsKey(endpointID string) string {
	return webhookTag + "replay:" + endpointID + ":ids"
}

// InvalidationChannel is the Pub/Sub channel on which a process announces a
// change to records that every process caches (pipeline/invalidate.go). A
// channel is not a key: in Redis Cluster, PUBLISH reaches every node.
func InvalidationChannel() string { return prefix + "invalidate" }

// destTag is the hash tag of one destination's shaping state
// (pipeline/deliver/shaping.go).
func destTag(dest string) string { return prefix + "{dest:" + dest + "}:" }

// DestConnsKey is the sorted set of one destination's connection leases
// (member: lease id, score: expiry in ms).
func DestConnsKey(dest string) string { return destTag(dest) + "conns" }

// DestRateKey holds one destination's message-rate state (GCRA: the
// theoretical arrival time in ms).
func DestRateKey(dest string) string { return destTag(dest) + "rate" }

// DestSuspendKey is the hash of one destination's suspension: until (ms),
// level, reason, since (ms).
func DestSuspendKey(dest string) string { return destTag(dest) + "suspend" }

// DestWaitingKey is the sorted set of the emails deferred for one
// destination, held back by its limits or after its answer (member: email
// id, score: the next attempt, in ms): its queue depth. Members whose time
// has come are trimmed when it is written.
func DestWaitingKey(dest string) string { return destTag(dest) + "waiting" }

// DestinationsKey indexes the destinations that were suspended or limited
// (score: last time, in ms), for GET /v1/destinations and /metrics.
func DestinationsKey() string { return prefix + "{dests}:index" }
