package store

// Every Redis key pigeonpost uses is built here, nowhere else.
//
// Keys that one atomic operation (MULTI/EXEC or a Lua script) touches
// together share a hash tag, the part in braces, so that they live in one
// Redis Cluster slot:
//
//	{q}         the mail: email records, bodies, events, the delivery stream,
//	            the retry schedule and each account's email index. Submit
//	            persists and enqueues in one MULTI over these keys.
//	{keys}      API key records, looked up by the SHA-256 of the key.
//	{acct:ID}   one account: its record, domains, suppressions, rate limit.
//	{settings}  process-wide settings such as the tracking secret.
const prefix = "pp:"

const (
	queueTag    = prefix + "{q}:"
	keysTag     = prefix + "{keys}:"
	settingsTag = prefix + "{settings}:"
)

// StreamKey is the delivery queue (a Redis Stream, consumer group "deliver").
func StreamKey() string { return queueTag + "stream" }

// RetryKey is the sorted set of emails waiting for their next attempt (score: due time in ms).
func RetryKey() string { return queueTag + "retry" }

// EmailKey is the hash holding one email record.
func EmailKey(id string) string { return queueTag + "email:" + id }

// BodyKey holds the MIME of one email as it will go out (before DKIM).
func BodyKey(id string) string { return queueTag + "body:" + id }

// EventsKey is the list of one email's events (JSON, oldest first).
func EventsKey(id string) string { return queueTag + "events:" + id }

// EventStreamKey is the stream of every account's events, read by the
// webhook dispatcher.
func EventStreamKey() string { return queueTag + "events" }

// AccountEventsKey is the stream of one account's events, for listing.
func AccountEventsKey(accountID string) string { return queueTag + "acct:" + accountID + ":events" }

// AccountEmailsKey indexes an account's emails by creation time.
func AccountEmailsKey(accountID string) string { return queueTag + "acct:" + accountID + ":emails" }

// KeyByHashKey is the hash holding the API key whose SHA-256 is hashHex.
func KeyByHashKey(hashHex string) string { return keysTag + "hash:" + hashHex }

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

// TrackingSecretKey holds the HMAC secret for tracking ids, generated once.
func TrackingSecretKey() string { return settingsTag + "tracking_secret" }
