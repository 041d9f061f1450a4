package store

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrClaimLost is returned by PersistWith when the idempotency claim it was
// given no longer holds (its pending marker expired and another request took
// the key): nothing was stored.
var ErrClaimLost = errors.New("idempotency claim lost")

// PersistOptions say where PersistWith queues the emails and what it records
// with them.
type PersistOptions struct {
	// Enqueue adds live mail to the delivery stream: each email that is
	// pending. An email with ScheduledAt set goes to the retry schedule,
	// due then, instead (test-mode mail too, so that it becomes "sent" on
	// time); a suppressed one goes nowhere.
	Enqueue bool
	// Batch, when set, is written with the emails (a batch of sends).
	Batch *Batch
	// FanOut, when set, is the progress of a segment's sends these emails
	// make (fanout.go).
	FanOut *FanOutStep
	// Idempotency, when set, stores the response under its key in the same
	// MULTI, provided the claim (Token) still holds.
	Idempotency *IdemDone
}

// IdemDone is the response to record under an idempotency key.
type IdemDone struct {
	Key      string // from IdempotencyKey
	Token    string // the claim's token
	Response []byte
	TTL      time.Duration
}

// PersistWith is Persist with scheduling and idempotency: every email, its
// queue or schedule entry and the idempotency response are written in one
// MULTI/EXEC, all or nothing. With Idempotency the MULTI runs under WATCH of
// the idempotency key: if another request took the key meanwhile, EXEC
// writes nothing and ErrClaimLost is returned, so a key never yields two sends.
func (s *Store) PersistWith(ctx context.Context, emails []NewEmail, opt PersistOptions) error {
	write := func(p redis.Pipeliner) error {
		for _, ne := range emails {
			s.writeEmail(ctx, p, ne)
			e := ne.Email
			if ne.Group != "" {
				p.HSet(ctx, EmailKey(e.ID), fieldGroup, ne.Group)
			}
			switch {
			case e.Status == StatusSuppressed:
			case e.ScheduledAt != nil:
				p.ZAdd(ctx, RetryKey(), redis.Z{Score: float64(e.ScheduledAt.UnixMilli()), Member: e.ID})
			case opt.Enqueue && e.Status == StatusPending:
				p.XAdd(ctx, &redis.XAddArgs{Stream: StreamKey(), Values: []any{"id", e.ID}})
			}
		}
		if opt.Batch != nil {
			s.writeBatch(ctx, p, opt.Batch)
		}
		if opt.FanOut != nil {
			s.writeFanOutStep(ctx, p, opt.FanOut)
		}
		if d := opt.Idempotency; d != nil {
			p.HSet(ctx, d.Key, idemFieldState, IdemStateDone, idemFieldResponse, d.Response)
			p.HDel(ctx, d.Key, idemFieldToken)
			p.PExpire(ctx, d.Key, d.TTL)
		}
		return nil
	}
	d := opt.Idempotency
	if d == nil {
		_, err := s.rdb.TxPipelined(ctx, write)
		return err
	}
	err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
		token, err := tx.HGet(ctx, d.Key, idemFieldToken).Result()
		if errors.Is(err, redis.Nil) || (err == nil && token != d.Token) {
			return ErrClaimLost
		}
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, write)
		return err
	}, d.Key)
	if errors.Is(err, redis.TxFailedErr) {
		return ErrClaimLost
	}
	return err
}

// fieldGroup lists, on each email of a scheduled submission with several
// recipients, the ids of all of them (JSON): NewEmail.Group.
const fieldGroup = "group"

// EmailGroup is the NewEmail.Group of emails with these ids.
func EmailGroup(ids []string) string { return mustJSON(ids) }
