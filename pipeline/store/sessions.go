package store

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// Session is a dashboard login: the API key it was opened with (by the
// SHA-256 of the key, as KeyByHashKey names it) and its CSRF token. The
// dashboard package decides what a session may do; this is its record.
type Session struct {
	AccountID string
	KeyID     string
	KeyHash   string // SHA-256 (hex) of the API key, as HashKey
	CSRFToken string
	CreatedAt time.Time
	ExpiresAt time.Time
	// SeenAt is when the session was last used, to a minute or so
	// (TouchSession): the dashboard ends one idle for too long.
	SeenAt time.Time
}

// CreateSession stores s under the SHA-256 of its token, expiring at
// s.ExpiresAt.
func (s *Store) CreateSession(ctx context.Context, tokenHash string, sess *Session) error {
	key := SessionKey(tokenHash)
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, "accountId", sess.AccountID, "keyId", sess.KeyID, "keyHash", sess.KeyHash,
			"csrf", sess.CSRFToken, "createdAt", FormatTime(sess.CreatedAt), "expiresAt", FormatTime(sess.ExpiresAt),
			"seenAt", FormatTime(sess.CreatedAt))
		p.PExpireAt(ctx, key, sess.ExpiresAt)
		return nil
	})
	return err
}

// SessionByHash returns the session whose token has this SHA-256, or
// ErrNotFound (never stored, logged out or expired).
func (s *Store) SessionByHash(ctx context.Context, tokenHash string) (*Session, error) {
	m, err := s.rdb.HGetAll(ctx, SessionKey(tokenHash)).Result()
	if err != nil {
		return nil, err
	}
	if len(m) == 0 {
		return nil, ErrNotFound
	}
	sess := &Session{AccountID: m["accountId"], KeyID: m["keyId"], KeyHash: m["keyHash"], CSRFToken: m["csrf"]}
	created, expires := parseTime(m["createdAt"]), parseTime(m["expiresAt"])
	if created == nil || expires == nil || sess.KeyHash == "" || sess.CSRFToken == "" {
		return nil, errors.New("session record " + SessionKey(tokenHash) + " is incomplete")
	}
	sess.CreatedAt, sess.ExpiresAt, sess.SeenAt = *created, *expires, *created
	if seen := parseTime(m["seenAt"]); seen != nil {
		sess.SeenAt = *seen
	}
	return sess, nil
}

// touchSession sets a session's seenAt only if the session is still there:
// an HSET on a record that expired or was deleted meanwhile would leave a
// partial one behind, without expiry.
var touchSession = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'seenAt', ARGV[1])
end
return 0
`)

// TouchSession records that the session whose token has this SHA-256 was
// used at at.
func (s *Store) TouchSession(ctx context.Context, tokenHash string, at time.Time) error {
	return touchSession.Run(ctx, s.rdb, []string{SessionKey(tokenHash)}, FormatTime(at)).Err()
}

// DeleteSession ends the session whose token has this SHA-256.
func (s *Store) DeleteSession(ctx context.Context, tokenHash string) error {
	return s.rdb.Del(ctx, SessionKey(tokenHash)).Err()
}

// KeyByHash returns the key whose SHA-256 (hex, HashKey) this is, or
// ErrNotFound (unknown or revoked).
func (s *Store) KeyByHash(ctx context.Context, hash string) (*Key, error) {
	m, err := s.rdb.HGetAll(ctx, KeyByHashKey(hash)).Result()
	if err != nil {
		return nil, err
	}
	if len(m) == 0 {
		return nil, ErrNotFound
	}
	return keyFromHash(m), nil
}
