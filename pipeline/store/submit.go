package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
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
	// Messages are the MIME the emails name (Email.Message), each stored
	// once.
	Messages []NewMessage
}

// IdemDone is the response to record under an idempotency key.
type IdemDone struct {
	Key string // from IdempotencyKey
	// Token is the claim's token (IdemClaim); "" for a claim never
	// written, which holds only while the key does not exist: then FP,
	// the request's fingerprint, is recorded with the response.
	Token    string
	FP       string
	Response []byte
	TTL      time.Duration
}

// PersistWith is Persist with scheduling and idempotency: every email, its
// queue or schedule entry and the idempotency response are written in one
// MULTI/EXEC, all or nothing. With Idempotency the MULTI runs under WATCH of
// the idempotency key: if another request took the key meanwhile (or, for
// a claim never written, wrote it at all), EXEC writes nothing and
// ErrClaimLost is returned, so a key never yields two sends.
//
// Everything it writes must be in one shard (keys.go): else it writes
// nothing and returns an error.
func (s *Store) PersistWith(ctx context.Context, emails []NewEmail, opt PersistOptions) error {
	k, err := oneShard(emails, opt)
	if err != nil {
		return err
	}
	err = s.persist(ctx, emails, opt)
	s.noteWrite(ctx, k, err)
	return err
}

// persist is PersistWith's writes.
func (s *Store) persist(ctx context.Context, emails []NewEmail, opt PersistOptions) error {
	write := func(p redis.Pipeliner) error {
		for _, m := range opt.Messages {
			s.writeMessage(ctx, p, m, emails)
		}
		for _, ne := range emails {
			s.writeEmail(ctx, p, ne)
			e := ne.Email
			if ne.Group != "" {
				p.HSet(ctx, EmailKey(e.ID), fieldGroup, ne.Group)
			}
			switch {
			case e.Status == StatusSuppressed:
			case e.ScheduledAt != nil:
				p.ZAdd(ctx, RetryKey(ShardOf(e.ID)), redis.Z{Score: float64(e.ScheduledAt.UnixMilli()), Member: e.ID})
			case opt.Enqueue && e.Status == StatusPending:
				p.XAdd(ctx, &redis.XAddArgs{Stream: StreamKey(ShardOf(e.ID)), Values: []any{"id", e.ID}})
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
			if d.Token == "" {
				p.HSet(ctx, d.Key, idemFieldFP, d.FP)
			}
			p.HDel(ctx, d.Key, idemFieldToken)
			p.PExpire(ctx, d.Key, d.TTL)
		}
		return nil
	}
	d := opt.Idempotency
	wait := s.replicas.n > 0 && (d != nil || len(emails) > 0)
	if d == nil && !wait {
		_, err := s.rdb.TxPipelined(ctx, write)
		return err
	}
	// A WATCH gives the MULTI a connection of its own, on which WAIT then
	// counts the replicas that have it. Without an idempotency key the
	// first new record is watched: no one else writes it.
	var watched string
	if d != nil {
		watched = d.Key
	} else {
		watched = EmailKey(emails[0].Email.ID)
	}
	err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
		switch {
		case d != nil && d.Token == "":
			if n, err := tx.Exists(ctx, d.Key).Result(); err != nil {
				return err
			} else if n > 0 {
				return ErrClaimLost // another request stored it first
			}
		case d != nil:
			token, err := tx.HGet(ctx, d.Key, idemFieldToken).Result()
			if errors.Is(err, redis.Nil) || (err == nil && token != d.Token) {
				return ErrClaimLost
			}
			if err != nil {
				return err
			}
		}
		if _, err := tx.TxPipelined(ctx, write); err != nil {
			return err
		}
		if wait {
			return s.replicas.wait(ctx, tx)
		}
		return nil
	}, watched)
	if d != nil && errors.Is(err, redis.TxFailedErr) {
		return ErrClaimLost
	}
	return err
}

// oneShard returns the one shard of what PersistWith is to write, so that
// its MULTI is in one slot of a cluster, or an error if it spans shards.
func oneShard(emails []NewEmail, opt PersistOptions) (Shard, error) {
	var ids []string
	for _, e := range emails {
		ids = append(ids, e.Email.ID)
	}
	for _, m := range opt.Messages {
		ids = append(ids, m.ID)
	}
	if opt.Batch != nil {
		ids = append(ids, opt.Batch.ID)
	}
	if opt.FanOut != nil {
		ids = append(ids, opt.FanOut.BatchID)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	k := ShardOf(ids[0])
	for _, id := range ids[1:] {
		if ShardOf(id) != k {
			return 0, fmt.Errorf("store: one submission in shards %d and %d (%s)", k, ShardOf(id), id)
		}
	}
	if d := opt.Idempotency; d != nil && !strings.HasPrefix(d.Key, k.tag()) {
		return 0, fmt.Errorf("store: the idempotency key %s is not in shard %d", d.Key, k)
	}
	return k, nil
}

// ErrTooFewReplicas is returned by PersistWith when fewer replicas than
// SetMinReplicas asks for confirmed its writes in time. They are stored on
// the master (and will be delivered), but could be lost if it failed now:
// the caller answers with a temporary error. A client that retries with
// the same idempotency key (or Message-ID) stores nothing again, and gets
// the first receipt once the replicas have it (ConfirmReplicated).
var ErrTooFewReplicas = errors.New("too few replicas acknowledged the write")

// replicaAck is how many replicas must confirm a submission (0: none).
type replicaAck struct {
	n       int
	timeout time.Duration
}

// SetMinReplicas makes PersistWith wait, after its MULTI, until n replicas
// have it (WAIT n timeout), and fail with ErrTooFewReplicas when fewer did
// within timeout; n 0 turns it off. Call it before use.
func (s *Store) SetMinReplicas(n int, timeout time.Duration) {
	s.replicas = replicaAck{n: n, timeout: timeout}
}

// wait runs WAIT on tx's connection, the one that wrote.
func (r replicaAck) wait(ctx context.Context, tx *redis.Tx) error {
	got, err := tx.Wait(ctx, r.n, r.timeout).Result()
	if err != nil {
		return err
	}
	if got < int64(r.n) {
		return fmt.Errorf("%w: %d of %d within %v", ErrTooFewReplicas, got, r.n, r.timeout)
	}
	return nil
}

// fieldGroup lists, on each email of a scheduled submission with several
// recipients, the ids of all of them (JSON): NewEmail.Group.
const fieldGroup = "group"

// EmailGroup is the NewEmail.Group of emails with these ids.
func EmailGroup(ids []string) string { return mustJSON(ids) }

// touchDone rewrites the state of a done idempotency record (KEYS[1]) as
// it is, if it still exists: a write that changes nothing, for WAIT to
// count replicas against.
var touchDone = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'state') == 'done' then
  redis.call('HSET', KEYS[1], 'state', 'done')
end
return 1
`)

// ConfirmReplicated makes sure, when SetMinReplicas asks for replicas,
// that they have the done idempotency record key before its receipt is
// replayed: the first request may have been answered with
// ErrTooFewReplicas, and its retry must not get a 250 the replicas could
// not back. WAIT counts against the connection's own last write, so a
// no-op write to the record goes first, on the same connection (and
// replication being in order, a replica that has it has the submission).
func (s *Store) ConfirmReplicated(ctx context.Context, key string) error {
	if s.replicas.n == 0 {
		return nil
	}
	return s.rdb.Watch(ctx, func(tx *redis.Tx) error {
		if err := touchDone.Run(ctx, tx, []string{key}).Err(); err != nil {
			return err
		}
		return s.replicas.wait(ctx, tx)
	}, key)
}
