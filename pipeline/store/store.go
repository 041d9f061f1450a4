package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNotFound is returned for a record that does not exist.
var ErrNotFound = errors.New("not found")

// ErrExists is returned when creating a record whose name is taken.
var ErrExists = errors.New("already exists")

// Store reads and writes records. It is safe for concurrent use.
type Store struct {
	rdb        redis.UniversalClient
	now        func() time.Time
	retention  Retention
	replicas   replicaAck
	shards     int                        // SetShards
	inUse      atomic.Pointer[shardsSeen] // registry's last answer
	registered atomic.Int64               // when RegisterShards last succeeded (unix s)
	downUntil  [MaxShards]atomic.Int64    // per shard: when PickShard may pick it again (unix ns)
}

// Retention says how long finished mail is kept (0: forever).
type Retention struct {
	Content time.Duration // the MIME
	Records time.Duration // the email record and its events
}

// SetRetention sets how long finished mail is kept; call it before use.
func (s *Store) SetRetention(r Retention) { s.retention = r }

// finalStatus reports whether an email in this status will not change
// any more but for tracking hits, so that it can start to expire.
func finalStatus(status any) bool {
	switch status {
	case StatusDelivered, StatusBounced, StatusFailed, StatusCancelled, StatusSuppressed:
		return true
	}
	return false
}

// expire queues the expiry of a finished email's keys: its record and
// events, and its content: its own body (BodyKey, a record from before
// messages) or its share of its message, released (releaseScript). message
// is the email's Email.Message.
func (s *Store) expire(ctx context.Context, p redis.Pipeliner, id, message string) {
	msg, refs := messageKeysOf(id, message)
	p.Eval(ctx, releaseOne, []string{EmailKey(id), BodyKey(id), msg, refs},
		int64(s.retention.Content.Seconds()))
	if s.retention.Records > 0 {
		p.Expire(ctx, EmailKey(id), s.retention.Records)
		p.Expire(ctx, EventsKey(id), s.retention.Records)
	}
}

// messageKeysOf returns the MessageKey and MessageRefsKey of the message of
// email id, message: for a record without one (message ""), keys that
// the release never touches, in the email's shard (a script's keys must
// be in one slot).
func messageKeysOf(id, message string) (msg, refs string) {
	if message == "" {
		tag := idTag(id)
		return tag + "msg:", tag + "msg::refs"
	}
	return MessageKey(message), MessageRefsKey(message)
}

// releaseLua defines release(record, body, msg, refs, secs): an email that
// became final gives up its content. An email with a message (its record's
// "message" field) counts down the message's pending recipients (refs)
// once, its record marked released; the last one starts the message's
// retention of secs seconds (0: kept). A record without a message expires
// its own body. A record that is gone releases nothing.
const releaseLua = `
local function release(record, body, msg, refs, secs)
  if redis.call('EXISTS', record) == 0 then
    return -1
  end
  if redis.call('HEXISTS', record, 'message') == 0 then
    if tonumber(secs) > 0 then
      redis.call('EXPIRE', body, secs)
    end
    return 0
  end
  if redis.call('HSETNX', record, 'released', '1') == 0 then
    return -1
  end
  local left = redis.call('DECR', refs)
  if left <= 0 then
    redis.call('DEL', refs)
    if tonumber(secs) > 0 then
      redis.call('EXPIRE', msg, secs)
    end
  end
  return left
end
`

// releaseOne is release for one email: KEYS its record, own body, message
// and message's count; ARGV[1] the content's retention (seconds). It is
// sent as source (EVAL), as scripts queued in a MULTI are.
const releaseOne = releaseLua + `
return release(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1])
`

// New returns a Store on rdb; now is the clock for timestamps.
func New(rdb redis.UniversalClient, now func() time.Time) *Store {
	return &Store{rdb: rdb, now: now}
}

// Redis exposes the client for the queue worker and health checks.
func (s *Store) Redis() redis.UniversalClient { return s.rdb }

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewID returns prefix + "_" + 26 random base32 characters (128 bits):
// unguessable, so an email id in a pixel URL cannot be enumerated.
func NewID(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return prefix + "_" + idEncoding.EncodeToString(b[:])
}

// HashKey returns the stored form of an API key.
func HashKey(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// ---- accounts ----

// CreateAccount creates an account; ErrExists if the name is taken.
func (s *Store) CreateAccount(ctx context.Context, name string) (*Account, error) {
	a := &Account{ID: NewID("acct"), Name: name, CreatedAt: s.now().UTC()}
	ok, err := s.rdb.HSetNX(ctx, AccountsKey(), name, a.ID).Result()
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrExists
	}
	if err := s.rdb.HSet(ctx, AccountKey(a.ID), "id", a.ID, "name", name, "createdAt", FormatTime(a.CreatedAt)).Err(); err != nil {
		return nil, err
	}
	return a, nil
}

// AccountByName returns the account's id, or ErrNotFound.
func (s *Store) AccountByName(ctx context.Context, name string) (string, error) {
	id, err := s.rdb.HGet(ctx, AccountsKey(), name).Result()
	if errors.Is(err, redis.Nil) {
		return "", ErrNotFound
	}
	return id, err
}

// EnsureAccount returns the id of the named account, creating it if needed.
func (s *Store) EnsureAccount(ctx context.Context, name string) (string, error) {
	a, err := s.CreateAccount(ctx, name)
	if errors.Is(err, ErrExists) {
		return s.AccountByName(ctx, name)
	}
	if err != nil {
		return "", err
	}
	return a.ID, nil
}

// ---- API keys ----

// NewKeySecret returns a fresh API key for mode: sp_live_… or sp_test_….
func NewKeySecret(mode string) string {
	var b [20]byte
	_, _ = rand.Read(b[:])
	return "sp_" + mode + "_" + idEncoding.EncodeToString(b[:])
}

// CreateKey stores a key for the account. secret is the key itself; only its
// hash, prefix and last four characters are kept. domainID, when not empty,
// limits the key to that domain (written in the same MULTI: the key never
// exists unrestricted). If a key with this secret exists already, it is
// returned unchanged (bootstrap keys are idempotent).
func (s *Store) CreateKey(ctx context.Context, accountID, name, mode, permission, secret, domainID string) (*Key, error) {
	hash := HashKey(secret)
	if k, err := s.KeyBySecret(ctx, secret); err == nil {
		return k, nil
	} else if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	k := &Key{
		ID: NewID("key"), AccountID: accountID, Name: name, Mode: mode, Permission: permission,
		Prefix: secret[:min(len(secret), 8)], Last4: secret[max(0, len(secret)-4):], CreatedAt: s.now().UTC(),
		DomainID: domainID,
	}
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, KeyByHashKey(hash), "id", k.ID, "accountId", accountID, "name", name, "mode", mode,
			"permission", permission, "prefix", k.Prefix, "last4", k.Last4, "createdAt", FormatTime(k.CreatedAt))
		if domainID != "" {
			p.HSet(ctx, KeyByHashKey(hash), "domainId", domainID)
		}
		p.Set(ctx, KeyIDKey(k.ID), hash, 0)
		p.SAdd(ctx, AccountKeysKey(accountID), k.ID)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return k, nil
}

func keyFromHash(m map[string]string) *Key {
	k := &Key{
		ID: m["id"], AccountID: m["accountId"], Name: m["name"], Mode: m["mode"],
		Permission: m["permission"], Prefix: m["prefix"], Last4: m["last4"],
		LastUsedAt: parseTime(m["lastUsedAt"]), DomainID: m["domainId"],
	}
	if t := parseTime(m["createdAt"]); t != nil {
		k.CreatedAt = *t
	}
	return k
}

// KeyBySecret looks a key up by the hash of secret; ErrNotFound if unknown.
func (s *Store) KeyBySecret(ctx context.Context, secret string) (*Key, error) {
	return s.KeyByHash(ctx, HashKey(secret))
}

// TouchKey records when the key was last used.
func (s *Store) TouchKey(ctx context.Context, secret string, at time.Time) error {
	return s.TouchKeyByHash(ctx, HashKey(secret), at)
}

// TouchKeyByHash is TouchKey for the key whose SHA-256 (hex) this is.
func (s *Store) TouchKeyByHash(ctx context.Context, hash string, at time.Time) error {
	return s.rdb.HSet(ctx, KeyByHashKey(hash), "lastUsedAt", FormatTime(at)).Err()
}

// ListKeys returns the account's keys.
func (s *Store) ListKeys(ctx context.Context, accountID string) ([]*Key, error) {
	ids, err := s.rdb.SMembers(ctx, AccountKeysKey(accountID)).Result()
	if err != nil {
		return nil, err
	}
	keys := make([]*Key, 0, len(ids))
	for _, id := range ids {
		hash, err := s.rdb.Get(ctx, KeyIDKey(id)).Result()
		if errors.Is(err, redis.Nil) {
			continue
		} else if err != nil {
			return nil, err
		}
		m, err := s.rdb.HGetAll(ctx, KeyByHashKey(hash)).Result()
		if err != nil {
			return nil, err
		}
		if len(m) > 0 {
			keys = append(keys, keyFromHash(m))
		}
	}
	return keys, nil
}

// DeleteKey revokes a key of the account; ErrNotFound if it is not the account's.
func (s *Store) DeleteKey(ctx context.Context, accountID, keyID string) error {
	ok, err := s.rdb.SIsMember(ctx, AccountKeysKey(accountID), keyID).Result()
	if err != nil {
		return err
	}
	if !ok {
		return ErrNotFound
	}
	hash, err := s.rdb.Get(ctx, KeyIDKey(keyID)).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		if hash != "" {
			p.Del(ctx, KeyByHashKey(hash))
		}
		p.Del(ctx, KeyIDKey(keyID))
		p.SRem(ctx, AccountKeysKey(accountID), keyID)
		return nil
	})
	return err
}

// ---- domains ----

// PutDomain creates or replaces the account's domain record.
func (s *Store) PutDomain(ctx context.Context, accountID string, d *Domain) error {
	b, err := json.Marshal(domainJSON{Domain: *d, Selector: d.Selector, PrivateKeyPEM: d.PrivateKeyPEM})
	if err != nil {
		return err
	}
	return s.rdb.HSet(ctx, DomainsKey(accountID), d.Name, b).Err()
}

// AddDomain stores a new domain; ErrExists if the account has it already.
func (s *Store) AddDomain(ctx context.Context, accountID string, d *Domain) error {
	b, err := json.Marshal(domainJSON{Domain: *d, Selector: d.Selector, PrivateKeyPEM: d.PrivateKeyPEM})
	if err != nil {
		return err
	}
	ok, err := s.rdb.HSetNX(ctx, DomainsKey(accountID), d.Name, b).Result()
	if err != nil {
		return err
	}
	if !ok {
		return ErrExists
	}
	return nil
}

func decodeDomain(raw string) (*Domain, error) {
	var dj domainJSON
	if err := json.Unmarshal([]byte(raw), &dj); err != nil {
		return nil, fmt.Errorf("decode domain: %w", err)
	}
	d := dj.Domain
	d.Selector, d.PrivateKeyPEM = dj.Selector, dj.PrivateKeyPEM
	return &d, nil
}

// DomainByName returns the account's domain called name; ErrNotFound if none.
func (s *Store) DomainByName(ctx context.Context, accountID, name string) (*Domain, error) {
	raw, err := s.rdb.HGet(ctx, DomainsKey(accountID), strings.ToLower(name)).Result()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	} else if err != nil {
		return nil, err
	}
	return decodeDomain(raw)
}

// ListDomains returns the account's domains sorted by name.
func (s *Store) ListDomains(ctx context.Context, accountID string) ([]*Domain, error) {
	all, err := s.rdb.HGetAll(ctx, DomainsKey(accountID)).Result()
	if err != nil {
		return nil, err
	}
	out := make([]*Domain, 0, len(all))
	for _, raw := range all {
		d, err := decodeDomain(raw)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	sortDomains(out)
	return out, nil
}

// DomainByID returns the account's domain with that id; ErrNotFound if none.
func (s *Store) DomainByID(ctx context.Context, accountID, id string) (*Domain, error) {
	all, err := s.ListDomains(ctx, accountID)
	if err != nil {
		return nil, err
	}
	for _, d := range all {
		if d.ID == id {
			return d, nil
		}
	}
	return nil, ErrNotFound
}

// DeleteDomain removes the account's domain called name.
func (s *Store) DeleteDomain(ctx context.Context, accountID, name string) error {
	return s.rdb.HDel(ctx, DomainsKey(accountID), name).Err()
}

// ---- suppressions ----

// Suppression says why an address receives no more mail.
type Suppression struct {
	Address   string    `json:"address"`
	Reason    string    `json:"reason"`
	CreatedAt time.Time `json:"createdAt"`
}

// Suppress adds addr to the account's suppression list.
func (s *Store) Suppress(ctx context.Context, accountID, addr, reason string) error {
	b, _ := json.Marshal(Suppression{Address: strings.ToLower(addr), Reason: reason, CreatedAt: s.now().UTC()})
	return s.rdb.HSet(ctx, SuppressionsKey(accountID), strings.ToLower(addr), b).Err()
}

// ---- emails ----

// NewEmail is an email to persist. Its MIME is its Email.Message, stored
// with PersistOptions.Messages; or, for an email without one, Body, stored
// under its own key (BodyKey) and sent as it is.
type NewEmail struct {
	Email *Email
	Body  []byte
	// Warnings are recorded as "warning" events with the email (e.g. a
	// MIME part the tracking rewrite left unchanged).
	Warnings []string
	// Group lists the ids of every email of a scheduled submission with
	// several recipients (JSON), so that cancelling one cancels all.
	Group string
}

// Persist stores every email, its body and its index entry, and, when
// enqueue is set, adds it to the delivery stream, all in one MULTI/EXEC:
// one round trip, and either all of it is stored or none. When Persist
// returns nil, Redis has acknowledged the write (with appendfsync always,
// it is on disk), so the caller may acknowledge the message.
func (s *Store) Persist(ctx context.Context, emails []NewEmail, enqueue bool) error {
	return s.PersistWith(ctx, emails, PersistOptions{Enqueue: enqueue})
}

// writeEmail queues the writes that store one new email: its record, its
// body and its index entry (not its queue entry). Persist and PersistWith
// (submit.go) both use it.
func (s *Store) writeEmail(ctx context.Context, p redis.Pipeliner, ne NewEmail) {
	e := ne.Email
	p.HSet(ctx, EmailKey(e.ID), e.hash())
	if e.Message == "" {
		p.Set(ctx, BodyKey(e.ID), ne.Body, 0)
	}
	created := redis.Z{Score: float64(e.CreatedAt.UnixMilli()), Member: e.ID}
	k := ShardOf(e.ID)
	p.ZAdd(ctx, AccountEmailsKey(k, e.AccountID), created)
	if e.Send != nil {
		p.ZAdd(ctx, AccountSendsKey(k, e.AccountID), created)
		if e.Send.BatchID != "" {
			p.ZAdd(ctx, BatchEmailsKey(e.Send.BatchID), created)
		}
	}
	for _, w := range ne.Warnings {
		appendEvents(ctx, p, &Event{Type: EventWarning, Timestamp: e.CreatedAt, EmailID: e.ID, AccountID: e.AccountID,
			Data: map[string]string{"message": w}})
	}
	if finishedAtOnce(e) {
		// Nothing is delivered. Its message does not count it
		// (writeMessage): it is released as it is written.
		if e.Message != "" {
			p.HSet(ctx, EmailKey(e.ID), FieldReleased, "1")
		}
		s.expire(ctx, p, e.ID, e.Message)
	}
}

// finishedAtOnce reports whether e is final as it is stored: a test-mode
// email not scheduled (never delivered), or a suppressed one.
func finishedAtOnce(e *Email) bool {
	return (e.Mode == ModeTest && e.ScheduledAt == nil) || e.Status == StatusSuppressed
}

// NewMessage is the MIME of one submission, stored once (MessageKey) for
// the emails whose Email.Message is its ID.
type NewMessage struct {
	ID   string
	MIME []byte
}

// writeMessage queues the writes that store m for emails, counting those
// of them that are not final yet (MessageRefsKey); with none, its
// retention starts at once.
func (s *Store) writeMessage(ctx context.Context, p redis.Pipeliner, m NewMessage, emails []NewEmail) {
	p.Set(ctx, MessageKey(m.ID), m.MIME, 0)
	refs := 0
	for _, ne := range emails {
		if ne.Email.Message == m.ID && !finishedAtOnce(ne.Email) {
			refs++
		}
	}
	if refs > 0 {
		p.Set(ctx, MessageRefsKey(m.ID), refs, 0)
	} else if s.retention.Content > 0 {
		p.Expire(ctx, MessageKey(m.ID), s.retention.Content)
	}
}

// Email returns the email record; ErrNotFound if unknown.
func (s *Store) Email(ctx context.Context, id string) (*Email, error) {
	m, err := s.rdb.HGetAll(ctx, EmailKey(id)).Result()
	if err != nil {
		return nil, err
	}
	if len(m) == 0 {
		return nil, ErrNotFound
	}
	return emailFromHash(m), nil
}

// EmailLinks returns the destinations of the email's tracked links, by
// index; ErrNotFound if there is no such email. A click needs only these.
func (s *Store) EmailLinks(ctx context.Context, id string) ([]string, error) {
	links, err := hgetJSON[[]string](ctx, s.rdb, EmailKey(id), FieldLinks, "links of "+id)
	if err != nil {
		return nil, err
	}
	return *links, nil
}

// hgetJSON decodes the JSON in field of the hash key; ErrNotFound when the
// hash or the field is missing. what names the value in a decoding error.
func hgetJSON[T any](ctx context.Context, rdb redis.UniversalClient, key, field, what string) (*T, error) {
	raw, err := rdb.HGet(ctx, key, field).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("decode %s: %w", what, err)
	}
	return &v, nil
}

// Body returns the stored MIME of the email: its message (Email.Message),
// untracked, to be rendered for it; or, for a record from before messages,
// its own copy as it goes out.
func (s *Store) Body(ctx context.Context, e *Email) ([]byte, error) {
	key := BodyKey(e.ID)
	if e.Message != "" {
		key = MessageKey(e.Message)
	}
	b, err := s.rdb.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	return b, err
}

// SetLinksOnce records the destinations of e's tracked links, found when
// it was first rendered, unless they are recorded already: every render
// of one email finds the same. A record gone or without a message is
// left alone.
func (s *Store) SetLinksOnce(ctx context.Context, id string, links []string) error {
	return setLinksOnce.Run(ctx, s.rdb, []string{EmailKey(id)}, LinksValue(links)).Err()
}

var setLinksOnce = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], 'message') == 1 then
  redis.call('HSETNX', KEYS[1], 'links', ARGV[1])
end
return 1
`)

// Bounds of the event streams: old entries are trimmed (approximately).
const (
	eventStreamMaxLen        = 1_000_000
	accountEventStreamMaxLen = 100_000
)

// appendEvents queues the writes that record evs: each email's history and
// both event streams, and the analytics counters they move (stats.go, one
// script call for all). EmailID and AccountID must be set.
func appendEvents(ctx context.Context, p redis.Pipeliner, evs ...*Event) {
	for _, ev := range evs {
		raw := mustJSON(ev)
		p.RPush(ctx, EventsKey(ev.EmailID), raw)
		appendToStreams(ctx, p, ev, raw)
	}
	countEvents(ctx, p, evs)
}

// appendToStreams queues the writes that add ev, encoded as raw, to both
// event streams of its email's shard (shard 0 for an account event), in
// one script call (streamsScript).
func appendToStreams(ctx context.Context, p redis.Pipeliner, ev *Event, raw string) {
	k := ShardOf(ev.EmailID)
	p.Eval(ctx, streamsScript, []string{EventStreamKey(k), AccountEventsKey(k, ev.AccountID)},
		eventStreamMaxLen, accountEventStreamMaxLen, ev.AccountID, ev.EmailID, ev.Type, raw)
}

// streamsScript adds an event to the global stream (KEYS[1]) and to its
// account's stream (KEYS[2]) under one id, the one the global stream
// assigns: the webhook dispatcher derives its deliveries' ids from it, and
// a replay, which reads the account's stream, must find the same. The
// account's entry also carries it as gid: an entry from before this did
// not, and its id is not the global one. Should the account's stream have
// an entry at or past that id already (one of those, with a clock that went
// back), the entry gets an id of its own, still with gid.
var streamsScript = `
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
  'account', ARGV[3], 'email', ARGV[4], 'type', ARGV[5], 'event', ARGV[6])
local r = redis.pcall('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], id,
  'account', ARGV[3], 'email', ARGV[4], 'type', ARGV[5], 'event', ARGV[6], 'gid', id)
if type(r) == 'table' and r.err then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*',
    'account', ARGV[3], 'email', ARGV[4], 'type', ARGV[5], 'event', ARGV[6], 'gid', id)
end
return id
`

// UpdateEmail sets fields of the email record and records ev (may be nil),
// in one MULTI. An email whose new status is final starts to expire.
func (s *Store) UpdateEmail(ctx context.Context, id string, fields map[string]any, ev *Event) error {
	return s.updateEmail(ctx, id, fields, events(ev), finalStatus(fields[FieldStatus]))
}

// UpdateEmailEvents is UpdateEmail recording several events (none is nil).
func (s *Store) UpdateEmailEvents(ctx context.Context, id string, fields map[string]any, evs []*Event) error {
	return s.updateEmail(ctx, id, fields, evs, finalStatus(fields[FieldStatus]))
}

// FinishEmail is UpdateEmail for the last change of an email whose status
// alone does not say so: a test-mode email becomes "sent", which for live
// mail is a step on the way. The email starts to expire.
func (s *Store) FinishEmail(ctx context.Context, id string, fields map[string]any, ev *Event) error {
	return s.updateEmail(ctx, id, fields, events(ev), true)
}

func events(ev *Event) []*Event {
	if ev == nil {
		return nil
	}
	return []*Event{ev}
}

func (s *Store) updateEmail(ctx context.Context, id string, fields map[string]any, evs []*Event, finished bool) error {
	return s.finishUpdate(ctx, id, "", fields, evs, finished, nil)
}

// FinishDelivery records the outcome of the last attempt at e: its fields
// and event, its release when the status is final, and the end of its
// queue entry, in one MULTI (one round trip, one fsync). e is the record
// the attempt read: its Message, which never changes, spares reading it
// again.
func (s *Store) FinishDelivery(ctx context.Context, entry Entry, e *Email, fields map[string]any, ev *Event) error {
	return s.finishUpdate(ctx, e.ID, e.Message, fields, []*Event{ev}, finalStatus(fields[FieldStatus]), &entry)
}

// finishUpdate writes fields and evs to the email id and, when finished,
// releases its content; with entry, it acknowledges and deletes that
// queue entry too. message is the email's Message when known ("": read
// here when needed).
func (s *Store) finishUpdate(ctx context.Context, id, message string, fields map[string]any, evs []*Event, finished bool, entry *Entry) error {
	if finished && message == "" {
		// The message an email names never changes: read before the
		// MULTI, its key goes into it (the release is atomic in it).
		var err error
		message, err = s.rdb.HGet(ctx, EmailKey(id), "message").Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
	}
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		if len(fields) > 0 {
			p.HSet(ctx, EmailKey(id), fields)
		}
		if len(evs) > 0 {
			for _, ev := range evs {
				ev.EmailID = id
			}
			appendEvents(ctx, p, evs...)
		}
		if finished {
			s.expire(ctx, p, id, message)
		}
		if entry != nil {
			p.XAck(ctx, StreamKey(entry.Shard), GroupName, entry.StreamID)
			p.XDel(ctx, StreamKey(entry.Shard), entry.StreamID)
		}
		return nil
	})
	return err
}

// SetOnce sets field to value unless it is set already; it reports whether it set it.
func (s *Store) SetOnce(ctx context.Context, id, field, value string) (bool, error) {
	return s.rdb.HSetNX(ctx, EmailKey(id), field, value).Result()
}

// AddEvent records an event of an email.
func (s *Store) AddEvent(ctx context.Context, ev Event) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		appendEvents(ctx, p, &ev)
		return nil
	})
	return err
}

// Events returns the email's events, oldest first.
func (s *Store) Events(ctx context.Context, id string) ([]Event, error) {
	raw, err := s.rdb.LRange(ctx, EventsKey(id), 0, -1).Result()
	if err != nil {
		return nil, err
	}
	out := make([]Event, 0, len(raw))
	for _, r := range raw {
		var ev Event
		if json.Unmarshal([]byte(r), &ev) == nil {
			out = append(out, ev)
		}
	}
	return out, nil
}

// TrackingSecret returns the tracking HMAC secret, generating and storing it once.
func (s *Store) TrackingSecret(ctx context.Context) ([]byte, error) {
	var b [32]byte
	_, _ = rand.Read(b[:])
	if _, err := s.rdb.SetNX(ctx, TrackingSecretKey(), hex.EncodeToString(b[:]), 0).Result(); err != nil {
		return nil, err
	}
	v, err := s.rdb.Get(ctx, TrackingSecretKey()).Result()
	if err != nil {
		return nil, err
	}
	return hex.DecodeString(v)
}
