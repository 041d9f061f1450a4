package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Contacts (pipeline/contacts decides what they hold). A contact is a hash
// (ContactKey) so that an update writes only the fields it changes; its
// lower-cased address maps to its id in ContactEmailsKey, and its creation
// sequence number orders it in ContactIndexKey. Every key is under the
// account's tag, so each change is one script.

// The fields of a contact's hash that the scripts read or write; the rest
// are the contacts package's.
const (
	ContactFieldID        = "id"
	ContactFieldEmailKey  = "emailKey" // the lower-cased address, the key in ContactEmailsKey
	ContactFieldSeq       = "seq"
	ContactFieldCreatedAt = "createdAt"
	ContactFieldUpdatedAt = "updatedAt"
)

// ContactUpsert is one contact to write by UpsertContacts.
type ContactUpsert struct {
	// ID is the new contact's id (New), or the id the address maps to.
	ID string
	// EmailKey is the lower-cased address.
	EmailKey string
	// New creates the contact; otherwise it is updated.
	New bool
	// Set are the fields to write, name and value in turn.
	Set []string
}

// Upsert outcomes of UpsertContacts.
const (
	UpsertCreated = "c"
	UpsertUpdated = "u"
)

// upsertContacts writes contacts. KEYS[1] is the address map, KEYS[2] the
// index, KEYS[3] the sequence counter and KEYS[3+i] the hash of row i.
// ARGV[1] is the time; then, per row: id, email key, mode (n: create, u:
// update), the number of field pairs, the pairs. A row answers "c"
// (created), "u" (updated), or else the id its address maps to now ("" if
// none): a creation whose address is taken, an update whose address has
// moved or whose contact is gone. The caller retries those rows.
var upsertContacts = redis.NewScript(`
local out = {}
local a = 2
for i = 1, #KEYS - 3 do
  local key = KEYS[3 + i]
  local id, ek, mode, n = ARGV[a], ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3])
  local first = a + 4
  a = first + 2 * n
  local cur = redis.call('HGET', KEYS[1], ek)
  if mode == 'n' then
    if cur then
      out[i] = cur
    else
      redis.call('HSET', KEYS[1], ek, id)
      local seq = redis.call('INCR', KEYS[3])
      redis.call('ZADD', KEYS[2], seq, id)
      redis.call('HSET', key, 'id', id, 'emailKey', ek, 'seq', seq, 'createdAt', ARGV[1], 'updatedAt', ARGV[1])
      if n > 0 then
        redis.call('HSET', key, unpack(ARGV, first, a - 1))
      end
      out[i] = 'c'
    end
  elseif cur == id and redis.call('EXISTS', key) == 1 then
    redis.call('HSET', key, 'updatedAt', ARGV[1])
    if n > 0 then
      redis.call('HSET', key, unpack(ARGV, first, a - 1))
    end
    out[i] = 'u'
  else
    out[i] = cur or ''
  end
end
return out
`)

// UpsertContacts creates or updates rows in one script (one round trip);
// out[i] is UpsertCreated, UpsertUpdated, or the id row i's address maps
// to now ("" for none), for the caller to retry as an update or a
// creation. now is the time written as createdAt/updatedAt.
func (s *Store) UpsertContacts(ctx context.Context, accountID, now string, rows []ContactUpsert) ([]string, error) {
	if len(rows) == 0 {
		return nil, nil
	}
	keys := make([]string, 0, 3+len(rows))
	keys = append(keys, ContactEmailsKey(accountID), ContactIndexKey(accountID), ContactSeqKey(accountID))
	n := 1
	for _, r := range rows {
		n += 4 + len(r.Set)
	}
	args := make([]any, 0, n)
	args = append(args, now)
	for _, r := range rows {
		if len(r.Set)%2 != 0 {
			return nil, errors.New("store: contact fields not in pairs")
		}
		keys = append(keys, ContactKey(accountID, r.ID))
		mode := "u"
		if r.New {
			mode = "n"
		}
		args = append(args, r.ID, r.EmailKey, mode, len(r.Set)/2)
		for _, f := range r.Set {
			args = append(args, f)
		}
	}
	raw, err := upsertContacts.Run(ctx, s.rdb, keys, args...).StringSlice()
	if err != nil {
		return nil, err
	}
	if len(raw) != len(rows) {
		return nil, fmt.Errorf("store: upsert answered %d rows of %d", len(raw), len(rows))
	}
	return raw, nil
}

// ContactIDsByEmail returns the id of the contact of each lower-cased
// address ("" for none), in one HMGET.
func (s *Store) ContactIDsByEmail(ctx context.Context, accountID string, emailKeys []string) ([]string, error) {
	if len(emailKeys) == 0 {
		return nil, nil
	}
	vals, err := s.rdb.HMGet(ctx, ContactEmailsKey(accountID), emailKeys...).Result()
	if err != nil {
		return nil, err
	}
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i], _ = v.(string)
	}
	return out, nil
}

// Contacts returns the hash of each contact id, in one pipeline; a
// contact that does not exist is an empty map.
func (s *Store) Contacts(ctx context.Context, accountID string, ids []string) ([]map[string]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGetAll(ctx, ContactKey(accountID, id))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]map[string]string, len(ids))
	for i, c := range cmds {
		out[i] = c.Val()
	}
	return out, nil
}

// ErrContactEmailTaken is UpdateContact's answer when the new address is
// another contact's.
var ErrContactEmailTaken = errors.New("store: the address is another contact's")

// updateContact changes a contact. KEYS[1] is its hash, KEYS[2] the address
// map. ARGV: id, time, new email key ("" to keep it), the number of fields
// to delete, those fields, then field pairs to set. It answers {0} if the
// contact does not exist, {2} if the new address is another contact's, else
// {1, the hash after the change...}.
var updateContact = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {0}
end
local id, ek = ARGV[1], ARGV[3]
if ek ~= '' then
  local old = redis.call('HGET', KEYS[1], 'emailKey')
  if old ~= ek then
    local cur = redis.call('HGET', KEYS[2], ek)
    if cur and cur ~= id then
      return {2}
    end
    if old and redis.call('HGET', KEYS[2], old) == id then
      redis.call('HDEL', KEYS[2], old)
    end
    redis.call('HSET', KEYS[2], ek, id)
    redis.call('HSET', KEYS[1], 'emailKey', ek)
  end
end
local ndel = tonumber(ARGV[4])
if ndel > 0 then
  redis.call('HDEL', KEYS[1], unpack(ARGV, 5, 4 + ndel))
end
redis.call('HSET', KEYS[1], 'updatedAt', ARGV[2])
if #ARGV > 4 + ndel then
  redis.call('HSET', KEYS[1], unpack(ARGV, 5 + ndel, #ARGV))
end
local out = redis.call('HGETALL', KEYS[1])
table.insert(out, 1, 1)
return out
`)

// UpdateContact changes a contact atomically: its address when emailKey is
// not "" (ErrContactEmailTaken if that is another contact's), deletes the
// fields del and writes the pairs set, and returns the hash after the
// change; ErrNotFound if the contact does not exist.
func (s *Store) UpdateContact(ctx context.Context, accountID, id, now, emailKey string, del, set []string) (map[string]string, error) {
	if len(set)%2 != 0 {
		return nil, errors.New("store: contact fields not in pairs")
	}
	args := make([]any, 0, 4+len(del)+len(set))
	args = append(args, id, now, emailKey, len(del))
	for _, f := range del {
		args = append(args, f)
	}
	for _, f := range set {
		args = append(args, f)
	}
	raw, err := updateContact.Run(ctx, s.rdb, []string{ContactKey(accountID, id), ContactEmailsKey(accountID)}, args...).Slice()
	if err != nil {
		return nil, err
	}
	if len(raw) == 0 {
		return nil, errors.New("store: empty answer to a contact update")
	}
	switch code, _ := raw[0].(int64); code {
	case 0:
		return nil, ErrNotFound
	case 2:
		return nil, ErrContactEmailTaken
	}
	h := make(map[string]string, (len(raw)-1)/2)
	for i := 1; i+1 < len(raw); i += 2 {
		k, _ := raw[i].(string)
		v, _ := raw[i+1].(string)
		h[k] = v
	}
	return h, nil
}

// deleteContact removes a contact (KEYS[1]), its address (KEYS[2]) and its
// index entry (KEYS[3]); ARGV[1] is its id. It answers 0 if there was none.
var deleteContact = redis.NewScript(`
local ek = redis.call('HGET', KEYS[1], 'emailKey')
if not ek then
  return 0
end
redis.call('DEL', KEYS[1])
if redis.call('HGET', KEYS[2], ek) == ARGV[1] then
  redis.call('HDEL', KEYS[2], ek)
end
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
`)

// DeleteContact removes the account's contact; ErrNotFound if none.
func (s *Store) DeleteContact(ctx context.Context, accountID, id string) error {
	n, err := deleteContact.Run(ctx, s.rdb, []string{ContactKey(accountID, id), ContactEmailsKey(accountID), ContactIndexKey(accountID)}, id).Int()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// ContactIndex returns up to n contact ids of the account in creation order
// (newest first when newestFirst) after the sequence number after (0: from
// the start), with their sequence numbers.
func (s *Store) ContactIndex(ctx context.Context, accountID string, after int64, newestFirst bool, n int) (ids []string, seqs []int64, err error) {
	by := &redis.ZRangeBy{Min: "-inf", Max: "+inf", Count: int64(n)}
	var zs []redis.Z
	if newestFirst {
		if after > 0 {
			by.Max = "(" + strconv.FormatInt(after, 10)
		}
		zs, err = s.rdb.ZRevRangeByScoreWithScores(ctx, ContactIndexKey(accountID), by).Result()
	} else {
		if after > 0 {
			by.Min = "(" + strconv.FormatInt(after, 10)
		}
		zs, err = s.rdb.ZRangeByScoreWithScores(ctx, ContactIndexKey(accountID), by).Result()
	}
	if err != nil {
		return nil, nil, err
	}
	ids, seqs = make([]string, len(zs)), make([]int64, len(zs))
	for i, z := range zs {
		ids[i], _ = z.Member.(string)
		seqs[i] = int64(z.Score)
	}
	return ids, seqs, nil
}

// ---- segments ----

// PutSegment creates or replaces the account's segment (a JSON record),
// with an index entry for a new one, as PutTemplate does: the same script.
func (s *Store) PutSegment(ctx context.Context, accountID, id string, record []byte) error {
	return putTemplate.Run(ctx, s.rdb, []string{SegmentsKey(accountID), SegmentIndexKey(accountID)}, id, record).Err()
}

// Segment returns the account's segment record; ErrNotFound if none.
func (s *Store) Segment(ctx context.Context, accountID, id string) ([]byte, error) {
	b, err := s.rdb.HGet(ctx, SegmentsKey(accountID), id).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	return b, err
}

// DeleteSegment removes the account's segment; ErrNotFound if none.
func (s *Store) DeleteSegment(ctx context.Context, accountID, id string) error {
	cmds, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HDel(ctx, SegmentsKey(accountID), id)
		p.ZRem(ctx, SegmentIndexKey(accountID), id)
		return nil
	})
	if err != nil {
		return err
	}
	if cmds[0].(*redis.IntCmd).Val() == 0 {
		return ErrNotFound
	}
	return nil
}

// ListSegments returns up to limit segment records, newest first, after the
// cursor (0 for the first page); next is 0 after the last page. As
// ListTemplates.
func (s *Store) ListSegments(ctx context.Context, accountID string, after int64, limit int) (records [][]byte, next int64, err error) {
	max := "+inf"
	if after > 0 {
		max = "(" + strconv.FormatInt(after, 10)
	}
	zs, err := s.rdb.ZRevRangeByScoreWithScores(ctx, SegmentIndexKey(accountID), &redis.ZRangeBy{Max: max, Min: "-inf", Count: int64(limit + 1)}).Result()
	if err != nil {
		return nil, 0, err
	}
	more := len(zs) > limit
	if more {
		zs = zs[:limit]
		next = int64(zs[len(zs)-1].Score)
	}
	if len(zs) == 0 {
		return nil, 0, nil
	}
	ids := make([]string, len(zs))
	for i, z := range zs {
		ids[i], _ = z.Member.(string)
	}
	raws, err := s.rdb.HMGet(ctx, SegmentsKey(accountID), ids...).Result()
	if err != nil {
		return nil, 0, err
	}
	for _, r := range raws {
		if str, ok := r.(string); ok { // else deleted between the two reads
			records = append(records, []byte(str))
		}
	}
	return records, next, nil
}

// ContactFieldStatus is the field of a contact's hash that holds its
// status (subscribed, unsubscribed, bounced, complained).
const ContactFieldStatus = "status"

// SetContactStatus sets the status of a contact, if it still exists: the
// delivery worker marks a contact "bounced" when its send hard-bounces.
func (s *Store) SetContactStatus(ctx context.Context, accountID, id, status string, at time.Time) error {
	_, err := s.UpdateContact(ctx, accountID, id, FormatTime(at), "", nil, []string{ContactFieldStatus, status})
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}
