package smtpd

import (
	"context"

	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// Pipeline is all smtpd needs of the rest of pigeonpost: *pipeline.Service
// satisfies it (checked in pipeline_test.go, since pipeline must not import
// smtpd), and the tests use a fake that fails on demand. It is not go-smtp's
// smtp.Backend, which Server implements.
//
// Every error is translated by reply: a *pipeline.Error keeps its codes, any
// other error is a storage failure and becomes 451 4.3.0.
type Pipeline interface {
	// Authenticate returns the key whose secret this is (the AUTH
	// password). pipeline.ErrAuthFailed means bad credentials (535);
	// any other error means it could not tell, and AUTH answers 454.
	// smtpd calls it again at each MAIL, so it should be cheap.
	Authenticate(ctx context.Context, secret string) (*store.Key, error)
	// AuthenticateFrom is Authenticate at AUTH, for a client at address
	// ip: it slows and then locks out an address that keeps failing
	// (pipeline.ErrAuthLocked, 454).
	AuthenticateFrom(ctx context.Context, secret, ip string) (*store.Key, error)
	// CheckSender reports whether key may send as addr, the MAIL FROM
	// address, so that an unverified domain is refused before DATA.
	CheckSender(ctx context.Context, key *store.Key, addr string) error
	// CheckRecipient checks a RCPT TO address: a mailbox
	// (pipeline.ErrBadAddress, 553 5.1.3) at a domain pigeonpost relays to
	// (pipeline.ErrBadDestination, 550 5.1.2).
	CheckRecipient(addr string) error
	// BeginAdmission starts, at DATA, the admission of key's message to
	// rcpts (suppressions, rate and monthly charge), so that its round
	// trip overlaps the transfer of the body. smtpd hands it to Submit in
	// Submission.Admission, and calls Release on it once done (which gives
	// the charge back unless the message was stored). It may return nil.
	BeginAdmission(ctx context.Context, key *store.Key, rcpts []string) *pipeline.Admission
	// Submit validates and stores the message. Transaction contract: when
	// it returns nil, every email of the submission is durably queued and
	// the receipt has one id per recipient kept, so smtpd may answer 250
	// with the first; on error nothing was stored and the client keeps the
	// message. smtpd answers 250 only after Submit returns.
	Submit(ctx context.Context, sub pipeline.Submission) (*pipeline.Receipt, error)
}
