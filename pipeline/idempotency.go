package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/failpoint"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// Idempotency (IETF draft-ietf-httpapi-idempotency-key-header,
// https://datatracker.ietf.org/doc/draft-ietf-httpapi-idempotency-key-header/).
//
// A request that carries an idempotency key first claims the key in Redis
// (a pending marker, set only if the key is free). The one request that
// claims it does the work; a send stores its response under the key in the
// same MULTI as its emails, so that a crash after the emails are stored
// still leaves the response, and the retry gets it instead of a second
// send. A request that finds the key:
//   - done, same fingerprint: gets the stored response; nothing is sent;
//   - different fingerprint (done or pending): ErrIdempotencyMismatch (422);
//   - pending, same fingerprint: waits for the first to finish (polling
//     Redis), then gets its response; ErrIdempotencyInProgress (409) if it
//     does not finish within idemWait.
//
// A request that fails releases the key: errors are not replayed, and the
// client may retry with the same key. The pending marker expires after
// idemPendingTTL so that a request that died mid-way does not block its key
// for a day; a request slower than that loses its claim and stores nothing
// (PersistWith watches the key), so one key never yields two sends.
//
// Keys are per account and per operation: the same key on two endpoints, or
// from two accounts, are independent.
const (
	idemTTL        = 24 * time.Hour
	idemPendingTTL = 2 * time.Minute
	idemWait       = 10 * time.Second
	idemPoll       = 20 * time.Millisecond
)

// Scope names an operation whose idempotency keys are kept apart from
// every other's.
type Scope string

// The scopes of the sends.
const (
	ScopeSend      Scope = "send"       // POST /v1/emails
	ScopeBatchItem Scope = "batch-item" // one email of POST /v1/emails/batch
	scopeSMTP      Scope = "smtp"       // a message over SMTP
)

// maxIdempotencyKeyLen bounds the Idempotency-Key header.
const maxIdempotencyKeyLen = 255

// CheckIdempotencyKey refuses keys that are empty, too long or not printable ASCII.
func CheckIdempotencyKey(key string) error {
	if key == "" || len(key) > maxIdempotencyKeyLen {
		return ErrInvalid.With("Idempotency-Key: must be 1 to 255 characters")
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] > 0x7e {
			return ErrInvalid.With("Idempotency-Key: must be printable ASCII")
		}
	}
	return nil
}

// Claim is a request's hold on an idempotency key. A send takes one with
// ClaimSend and hands it to Submit in Submission.Claim, which stores the
// receipt under the key with the emails.
type Claim struct {
	key   string      // Redis key
	token string      // "": never written (lookIdempotency)
	fp    string      // the request's fingerprint
	shard store.Shard // the key's, which the submission's mail shares
}

// ShardFor returns the shard a submission under claim (nil: none) writes
// its mail to: the claim's, so that the emails and the stored response
// are one MULTI, or else one picked among redis.shards.
func (s *Service) ShardFor(claim *Claim) store.Shard {
	if claim != nil {
		return claim.shard
	}
	return s.store.PickShard()
}

func sha256Hex(parts ...[]byte) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write(p)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// claimIdempotency takes key for this request (unwrittenClaim says where),
// marking it pending, or returns the response that an earlier request
// with the same key and fingerprint stored; it waits up to idemWait for
// one still pending.
func (s *Service) claimIdempotency(ctx context.Context, k *store.Key, scope Scope, key, fingerprint string) (*Claim, []byte, error) {
	c, err := s.unwrittenClaim(ctx, k, scope, key, fingerprint)
	if err != nil {
		return nil, nil, err
	}
	c.token = store.NewID("idem")
	deadline := time.Now().Add(idemWait)
	for {
		rec, err := s.store.IdemClaim(ctx, c.key, fingerprint, c.token, idemPendingTTL)
		if err != nil {
			return nil, nil, StorageError(err)
		}
		if rec == nil {
			return c, nil, nil
		}
		if rec.State == store.IdemStateDone || rec.Fingerprint != fingerprint {
			response, err := s.storedResponse(ctx, c, rec)
			return nil, response, err
		}
		if time.Now().After(deadline) {
			return nil, nil, ErrIdempotencyInProgress
		}
		select {
		case <-ctx.Done():
			return nil, nil, ErrIdempotencyInProgress.WithCause(ctx.Err())
		case <-time.After(idemPoll):
		}
	}
}

// unwrittenClaim is the claim of key for this request, not taken yet
// (its token empty): where the key is, and the request's fingerprint.
// Keys are the account's, per mode: a live send that reuses a test send's
// key and body is a new send, not the test's receipt (which was never
// delivered). Test mode has the namespace of its own, so that live keys
// stored before it existed keep their digests across an upgrade.
func (s *Service) unwrittenClaim(ctx context.Context, k *store.Key, scope Scope, key, fingerprint string) (*Claim, error) {
	digest := sha256Hex([]byte(scope), []byte(key))
	if k.Mode == store.ModeTest {
		digest = sha256Hex([]byte(scope), []byte(store.ModeTest), []byte(key))
	}
	shard, err := s.idemShard(ctx, k, digest)
	if err != nil {
		return nil, StorageError(err)
	}
	return &Claim{key: store.IdempotencyKey(shard, k.AccountID, digest), fp: fingerprint, shard: shard}, nil
}

// storedResponse is the answer to a request under c whose key an earlier
// request holds (rec): its response once it is done and was the same
// request, ErrIdempotencyMismatch when it was another.
func (s *Service) storedResponse(ctx context.Context, c *Claim, rec *store.IdemRecord) ([]byte, error) {
	if rec.Fingerprint != c.fp {
		return nil, ErrIdempotencyMismatch
	}
	if rec.State != store.IdemStateDone {
		return nil, ErrIdempotencyInProgress
	}
	if err := s.store.ConfirmReplicated(ctx, c.key); err != nil {
		return nil, StorageError(err)
	}
	return rec.Response, nil
}

// lostRace returns the receipt of the request that stored c's key first,
// when a claim never written (smtpIdempotency) found the key taken as it
// stored the mail; nil (and the error of the look) when there is none to
// give.
func (s *Service) lostRace(ctx context.Context, c *Claim) (*Receipt, error) {
	rec, err := s.store.IdemGet(ctx, c.key)
	if err != nil || rec == nil {
		return nil, err
	}
	response, err := s.storedResponse(ctx, c, rec)
	if err != nil {
		return nil, err
	}
	return replayReceipt(response)
}

// idemShard returns the shard of the idempotency key of this digest: the
// one the configured count gives it, unless redis.shards was changed
// within the keys' lifetime (or is being changed over the fleet) and an
// earlier request stored the key in the shard another count gives it.
// (Two copies of one request sent at the same instant to processes with
// different counts may then both be sent.)
func (s *Service) idemShard(ctx context.Context, k *store.Key, digest string) (store.Shard, error) {
	shards := s.store.IdemShards(ctx, digest)
	if len(shards) == 1 {
		return shards[0], nil
	}
	var earlier []string
	for _, shard := range shards[1:] {
		earlier = append(earlier, store.IdempotencyKey(shard, k.AccountID, digest))
	}
	i, err := s.store.IdemFind(ctx, earlier)
	if err != nil || i < 0 {
		return shards[0], err
	}
	return shards[1+i], nil
}

// ClaimSend claims key for a send of the account in scope, fingerprint
// being the request as the client made it (so that a repeat is recognised
// whatever the order of its JSON keys). It returns either the claim, to be
// put in Submission.Claim and released with Release if the send fails
// (Submit does not release a claim it was given), or the receipt an earlier request with the same key and
// fingerprint stored (Replayed set): then nothing is to be sent.
func (s *Service) ClaimSend(ctx context.Context, k *store.Key, scope Scope, key string, fingerprint []byte) (*Claim, *Receipt, error) {
	if err := CheckIdempotencyKey(key); err != nil {
		return nil, nil, err
	}
	claim, cached, err := s.claimIdempotency(ctx, k, scope, key, sha256Hex(fingerprint))
	if err != nil || cached == nil {
		return claim, nil, err
	}
	r, err := replayReceipt(cached)
	return nil, r, err
}

// ClaimResponse is ClaimSend for a request whose stored response is not a
// Receipt (a batch of sends, SubmitAll): it returns the claim, or the
// response an earlier request with the same key and fingerprint stored.
func (s *Service) ClaimResponse(ctx context.Context, k *store.Key, scope Scope, key string, fingerprint []byte) (*Claim, []byte, error) {
	if err := CheckIdempotencyKey(key); err != nil {
		return nil, nil, err
	}
	return s.claimIdempotency(ctx, k, scope, key, sha256Hex(fingerprint))
}

// Release frees the key of a send that failed: errors are not replayed,
// and the client may retry with the same key.
func (s *Service) Release(c *Claim) { s.releaseIdempotency(c) }

// releaseIdempotency frees the key after a failed request. It runs on its
// own context: the request's may be the reason it failed.
func (s *Service) releaseIdempotency(c *Claim) {
	if c.token == "" {
		return // never written
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.store.IdemRelease(ctx, c.key, c.token); err != nil {
		s.opt.Logger.Warn("releasing an idempotency key failed; it expires on its own", "err", err)
	}
}

// replayReceipt decodes a receipt stored under an idempotency key.
func replayReceipt(raw []byte) (*Receipt, error) {
	var r Receipt
	if err := json.Unmarshal(raw, &r); err != nil || len(r.IDs) == 0 {
		return nil, ErrUnavailable.WithCause(errors.New("undecodable idempotent response"))
	}
	r.Replayed = true
	return &r, nil
}

// smtpIdempotency derives the idempotency key of a message received over
// SMTP and claims it. A client that re-sends a message because its
// connection dropped after the final dot (RFC 5321 §4.1.1.4 duplicates)
// sends the same bytes again: the key is the message's Idempotency-Key
// header (removed from the message), else its own Message-ID, with a hash of
// the envelope and the message as received. A message without either (our
// Message-ID was generated) has no key, and no claim.
func (s *Service) smtpIdempotency(ctx context.Context, sub Submission, msg *submittedMessage, generatedID bool) (*Claim, error) {
	headerKey, err := idempotencyKeyHeader(msg)
	if err != nil {
		return nil, err
	}
	envelope := []byte(sub.EnvelopeFrom + "\x00" + strings.ToLower(strings.Join(sub.Recipients, "\x00")))
	var key, fp string
	switch {
	case headerKey != "":
		// The same request is the same envelope, sender, subject and body: a
		// client that rebuilds the message for its retry (new Date, new
		// Message-ID) is still recognised.
		key = "header:" + headerKey
		fp = sha256Hex(envelope, []byte(msg.from), []byte(msg.subject), msg.body)
	case !generatedID && msg.messageID != "":
		// The hash of the envelope and the bytes is part of the key: the
		// same Message-ID sent again to other recipients, or with another
		// body, is another message.
		fp = sha256Hex(envelope, sub.Message)
		key = "message-id:" + msg.messageID + ":" + fp
	default:
		return nil, nil
	}
	// The claim is not written (nor the key read): the mail is stored only
	// if the key does not exist then (PersistWith), in the same round
	// trip; a copy of a message stored before finds the first's receipt
	// after that (lostRace). An SMTP message is brief once its key is
	// known, and a pending marker would cost a fsynced write.
	return s.unwrittenClaim(ctx, sub.Key, scopeSMTP, key, fp)
}

// idempotencyKeyHeader reads and removes the Idempotency-Key header of a
// message; a malformed one is ErrBadMessage.
func idempotencyKeyHeader(msg *submittedMessage) (string, error) {
	key := strings.TrimSpace(msg.header.Get("Idempotency-Key"))
	msg.header.Del("Idempotency-Key")
	if key != "" {
		if err := CheckIdempotencyKey(key); err != nil {
			return "", ErrBadMessage.With(AsError(err).Message)
		}
	}
	return key, nil
}

// Idempotent runs fn once per idempotency key of the account and operation
// (scope): a repeat with the same fingerprint gets the response fn returned
// the first time, within 24 h. fn's errors are not stored. A nil response
// from fn means "done, but not replayable" (a response holding a secret): a
// repeat then gets ErrConflict. replayed reports a stored response.
//
// The response is stored after fn returns, so a crash in between lets a
// retry run fn again: sends do better (Send stores the response with the
// emails); this serves the other POST endpoints.
func (s *Service) Idempotent(ctx context.Context, k *store.Key, scope, key string, fingerprint []byte,
	fn func(ctx context.Context) ([]byte, error)) (response []byte, replayed bool, err error) {
	if err := CheckIdempotencyKey(key); err != nil {
		return nil, false, err
	}
	fp := sha256Hex(fingerprint)
	claim, cached, err := s.claimIdempotency(ctx, k, Scope("op:"+scope), key, fp)
	if err != nil {
		return nil, false, err
	}
	if cached != nil {
		if len(cached) == 0 {
			return nil, true, ErrConflict.With("a request with this Idempotency-Key has already completed, and its response held a secret that is shown only once")
		}
		return cached, true, nil
	}
	response, err = fn(ctx)
	if err != nil {
		s.releaseIdempotency(claim)
		return nil, false, err
	}
	stored := response
	if stored == nil {
		stored = []byte{}
	}
	if _, err := s.store.IdemComplete(ctx, claim.key, claim.token, stored, idemTTL); err != nil {
		s.opt.Logger.Warn("storing an idempotent response failed", "scope", scope, "err", err)
	}
	return response, false, nil
}

// releaseOnError releases c if *err is set when the caller returns.
func (s *Service) releaseOnError(c *Claim, err *error) {
	if *err != nil {
		s.releaseIdempotency(c)
	}
}

// done is the response to store under c when the emails are persisted.
func (c *Claim) done(response []byte) *store.IdemDone {
	return &store.IdemDone{Key: c.key, Token: c.token, FP: c.fp, Response: response, TTL: idemTTL}
}

// persist stores emails in one MULTI with what opt adds (the idempotent
// response, a batch record).
func (s *Service) persist(ctx context.Context, emails []store.NewEmail, opt store.PersistOptions) error {
	first := ""
	if len(emails) > 0 {
		first = emails[0].Email.ID
	}
	failpoint.Hit(failpoint.BeforeCommit, first)
	err := s.store.PersistWith(ctx, emails, opt)
	if err == nil {
		failpoint.Hit(failpoint.AfterCommit, first)
	}
	if errors.Is(err, store.ErrClaimLost) {
		return ErrIdempotencyInProgress.WithCause(err)
	}
	if err != nil {
		return StorageError(err)
	}
	return nil
}
