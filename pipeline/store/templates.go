package store

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Template is a stored email template. Subject, HTML and Text hold
// {{variable}} placeholders; pipeline parses and renders them.
type Template struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Subject string `json:"subject"`
	HTML    string `json:"html"`
	Text    string `json:"text"`
	// From and ReplyTo are the sender a send uses when it gives none.
	From      string    `json:"from,omitempty"`
	ReplyTo   string    `json:"replyTo,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// putTemplate stores the record (KEYS[1] field ARGV[1] = ARGV[2]) and, for
// a new template, its index entry (KEYS[2]) with the next sequence number,
// atomically: two templates created at once get distinct numbers.
var putTemplate = redis.NewScript(`
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  return 0
end
local top = redis.call('ZREVRANGE', KEYS[2], 0, 0, 'WITHSCORES')
local seq = 1
if #top > 0 then
  seq = tonumber(top[2]) + 1
end
redis.call('ZADD', KEYS[2], seq, ARGV[1])
return seq
`)

// PutTemplate creates or replaces the account's template; both keys carry
// the account's tag.
func (s *Store) PutTemplate(ctx context.Context, accountID string, t *Template) error {
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	return putTemplate.Run(ctx, s.rdb, []string{TemplatesKey(accountID), TemplateIndexKey(accountID)}, t.ID, b).Err()
}

// TemplateCount returns how many templates the account has.
func (s *Store) TemplateCount(ctx context.Context, accountID string) (int64, error) {
	return s.rdb.HLen(ctx, TemplatesKey(accountID)).Result()
}

// Template returns the account's template id; ErrNotFound if none.
func (s *Store) Template(ctx context.Context, accountID, id string) (*Template, error) {
	return hgetJSON[Template](ctx, s.rdb, TemplatesKey(accountID), id, "template")
}

// DeleteTemplate removes the account's template; ErrNotFound if none.
func (s *Store) DeleteTemplate(ctx context.Context, accountID, id string) error {
	cmds, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HDel(ctx, TemplatesKey(accountID), id)
		p.ZRem(ctx, TemplateIndexKey(accountID), id)
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

// ListTemplates returns up to limit of the account's templates, newest
// first, after the cursor: 0 for the first page, else the next returned with
// the previous page (a sequence number, valid even if that template has
// been deleted since). next is 0 after the last page.
func (s *Store) ListTemplates(ctx context.Context, accountID string, after int64, limit int) (ts []*Template, next int64, err error) {
	max := "+inf"
	if after > 0 {
		max = "(" + strconv.FormatInt(after, 10)
	}
	zs, err := s.rdb.ZRevRangeByScoreWithScores(ctx, TemplateIndexKey(accountID), &redis.ZRangeBy{Max: max, Min: "-inf", Count: int64(limit + 1)}).Result()
	if err != nil {
		return nil, 0, err
	}
	more := len(zs) > limit
	if more {
		zs = zs[:limit]
	}
	if len(zs) == 0 {
		return []*Template{}, 0, nil
	}
	ids := make([]string, len(zs))
	for i, z := range zs {
		ids[i] = z.Member.(string)
	}
	raws, err := s.rdb.HMGet(ctx, TemplatesKey(accountID), ids...).Result()
	if err != nil {
		return nil, 0, err
	}
	ts = make([]*Template, 0, len(raws))
	for _, r := range raws {
		str, ok := r.(string)
		if !ok {
			continue // deleted between the two reads
		}
		var t Template
		if json.Unmarshal([]byte(str), &t) == nil {
			ts = append(ts, &t)
		}
	}
	if more {
		next = int64(zs[len(zs)-1].Score)
	}
	return ts, next, nil
}
