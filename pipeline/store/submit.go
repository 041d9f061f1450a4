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
// queue or schedule entry and the idempotency response are written at once
// (a MULTI/EXEC or a script), all or nothing. With Idempotency they are
// written only if the claim still holds: if another request took the key
// meanwhile (or, for a claim never written, wrote it at all), nothing is
// written and ErrClaimLost is returned, so a key never yields two sends.
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
	// Without an idempotency key the first new record guards the write:
	// no one else writes it.
	g := guard{key: d.keyOr(emails), absent: d == nil || d.Token == ""}
	if d != nil {
		g.token = d.Token
	}
	recorded := s.rdb.Pipeline()
	_ = write(recorded)
	if cmds := recorded.Cmds(); scriptable(cmds) && (!wait || s.replicas.pipelined) {
		err := s.guardedWrite(ctx, g, cmds, wait)
		if d == nil && errors.Is(err, ErrClaimLost) {
			// The new record is there already: only a try of this very
			// write, sent again after its answer was lost, made it.
			return nil
		}
		return err
	}
	// A WATCH gives the MULTI a connection of its own, on which WAIT then
	// counts the replicas that have it.
	watched := g.key
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

// keyOr is the idempotency key, or (d nil) the first email's record key.
func (d *IdemDone) keyOr(emails []NewEmail) string {
	if d != nil {
		return d.Key
	}
	return EmailKey(emails[0].Email.ID)
}

// guard is the condition of a guarded write: key does not exist (absent),
// or its hash holds token in its token field (an idempotency claim).
type guard struct {
	key    string
	absent bool
	token  string
}

// guardedWriteScript applies writes if the guard holds: KEYS[1] does not
// exist (ARGV[1] "absent") or holds the token ARGV[2]. ARGV[3] is a count
// n of keys that follow, which must exist (values SET before the script);
// then come the writes, each as its argument count followed by its
// arguments. It returns 1, or 0 when nothing was written (an error when a
// key of the n is missing). Every key is in KEYS[1]'s slot (one shard),
// which Redis Cluster allows a script that did not declare them.
var guardedWriteScript = redis.NewScript(`
if ARGV[1] == 'absent' then
  if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
elseif redis.call('HGET', KEYS[1], 'token') ~= ARGV[2] then
  return 0
end
local i = 4 + tonumber(ARGV[3])
for j = 4, i - 1 do
  if redis.call('EXISTS', ARGV[j]) == 0 then
    return redis.error_reply('the value of ' .. ARGV[j] .. ' was not written')
  end
end
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + n))
  i = i + n + 1
end
return 1
`)

// scriptable reports whether cmds can run inside guardedWriteScript: a
// script cannot call another.
func scriptable(cmds []redis.Cmder) bool {
	for _, c := range cmds {
		switch c.Name() {
		case "eval", "evalsha":
			return false
		}
	}
	return true
}

// guardedWrite applies cmds if g holds, and with wait then has WAIT count
// the replicas that have them: one round trip, where WATCH, a read of the
// key, MULTI/EXEC and WAIT took four. That is fewer trips through the
// run queue before a 250 under load, and, in a fleet whose masters each
// see a part of the writes, a WAIT less. It returns ErrClaimLost when g
// did not hold (nothing written) and ErrTooFewReplicas as persist does.
func (s *Store) guardedWrite(ctx context.Context, g guard, cmds []redis.Cmder, wait bool) error {
	mode := "token"
	if g.absent {
		mode = "absent"
	}
	// A large value copied into the script's arguments, and from them
	// into Redis again, cost 1 ms a MB: it is SET before the script, to
	// expire unless the script keeps it (in the order of the writes,
	// before any EXPIRE of them).
	var bulky [][]any
	writes := make([]any, 0, 8*len(cmds))
	for _, c := range cmds {
		a := c.Args()
		if key, ok := bulkySet(a); ok {
			bulky = append(bulky, []any{"set", key, a[2], "px", bulkyTTL.Milliseconds()})
			a = []any{"persist", key}
		}
		writes = append(writes, len(a))
		writes = append(writes, a...)
	}
	args := append(make([]any, 0, 3+len(bulky)+len(writes)), mode, g.token, len(bulky))
	for _, set := range bulky {
		args = append(args, set[1])
	}
	args = append(args, writes...)
	for attempt := 0; ; attempt++ {
		master, err := s.masterFor(ctx, g.key)
		if err != nil {
			return err
		}
		var applied *redis.Cmd
		var acked *redis.Cmd
		_, _ = master.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, set := range bulky {
				p.Do(ctx, set...)
			}
			applied = guardedWriteScript.EvalSha(ctx, p, []string{g.key}, args...)
			if wait {
				// On the connection that wrote: WAIT counts its writes.
				acked = p.Do(ctx, "wait", s.replicas.n, s.replicas.timeout.Milliseconds())
			}
			return nil
		})
		err = applied.Err()
		switch {
		case err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") && attempt < 3:
			// A restarted or promoted master: load the script there.
			if err := guardedWriteScript.Load(ctx, master).Err(); err != nil {
				return err
			}
			continue
		case err != nil && moved(err) && attempt < 3:
			// The slot moved and the write was not made: where to is read
			// again, and the write goes there.
			s.reloadSlots(ctx)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
			continue
		case err != nil:
			s.reloadSlots(ctx)
			return err
		}
		if n, _ := applied.Int(); n == 0 {
			return ErrClaimLost
		}
		if wait {
			return s.replicas.enough(acked.Int64())
		}
		return nil
	}
}

// bulkySet returns the key of a plain SET of a value of bulkyValue bytes
// or more (a message or body), which guardedWrite sends before its script.
func bulkySet(args []any) (key string, ok bool) {
	if len(args) != 3 || args[0] != "set" {
		return "", false
	}
	key, _ = args[1].(string)
	switch v := args[2].(type) {
	case []byte:
		return key, key != "" && len(v) >= bulkyValue
	case string:
		return key, key != "" && len(v) >= bulkyValue
	}
	return "", false
}

const (
	bulkyValue = 64 << 10
	// bulkyTTL: a value whose script did not keep it (its guard failed,
	// or the process died before the script ran) expires after it.
	bulkyTTL = time.Hour
)

// masterFor returns the client of the master that serves key: in a cluster
// the node of its slot, so that a pipeline (and WAIT) stays on one
// connection; else the store's client.
func (s *Store) masterFor(ctx context.Context, key string) (redis.Cmdable, error) {
	if c, ok := s.rdb.(*redis.ClusterClient); ok {
		return c.MasterForKey(ctx, key)
	}
	return s.rdb, nil
}

// reloadSlots has a cluster client read the slot map again (go-redis
// coalesces reloads): a node's client, unlike the cluster's, does not on
// MOVED or on a node that stopped answering.
func (s *Store) reloadSlots(ctx context.Context) {
	if c, ok := s.rdb.(*redis.ClusterClient); ok {
		c.ReloadState(ctx)
	}
}

// moved reports a MOVED reply: the command went to a node that does not
// serve its slot (any more) and was not run. (An ASK, a slot being
// migrated, is answered as any other error: the client tries again.)
func moved(err error) bool { return strings.HasPrefix(err.Error(), "MOVED ") }

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
	// pipelined: the WAIT can go in one pipeline with the write, whose
	// replies the client waits for no longer than its read timeout.
	pipelined bool
}

// SetMinReplicas makes PersistWith wait, after its MULTI, until n replicas
// have it (WAIT n timeout), and fail with ErrTooFewReplicas when fewer did
// within timeout; n 0 turns it off. Call it before use.
func (s *Store) SetMinReplicas(n int, timeout time.Duration) {
	read, known := readTimeout(s.rdb)
	s.replicas = replicaAck{n: n, timeout: timeout, pipelined: known && (read <= 0 || timeout+time.Second <= read)}
}

// readTimeout is how long c waits for a reply, ≤ 0 for as long as it
// takes (go-redis's options after their defaults); known is false for a
// client of another kind.
func readTimeout(c redis.UniversalClient) (d time.Duration, known bool) {
	switch c := c.(type) {
	case *redis.Client:
		return c.Options().ReadTimeout, true
	case *redis.ClusterClient:
		return c.Options().ReadTimeout, true
	}
	return 0, false
}

// wait runs WAIT on tx's connection, the one that wrote.
func (r replicaAck) wait(ctx context.Context, tx *redis.Tx) error {
	return r.enough(tx.Wait(ctx, r.n, r.timeout).Result())
}

// enough turns WAIT's answer, got replicas (or err), into nil when that
// is enough, else ErrTooFewReplicas.
func (r replicaAck) enough(got int64, err error) error {
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
