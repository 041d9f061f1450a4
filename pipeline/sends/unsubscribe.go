package sends

import (
	"context"

	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/contacts"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// ValidUnsubscribeID reports whether id is the id of an unsubscribe link
// this server made.
func (s *Service) ValidUnsubscribeID(id string) bool {
	_, _, _, ok := s.signer.ParseUnsubscribeID(id)
	return ok
}

// Unsubscribe acts on the link of a send's List-Unsubscribe header (the
// one-click POST of RFC 8058, or the form of the landing page): the
// contact becomes unsubscribed, and the "unsubscribed" event is recorded on
// the send (webhook email.unsubscribed). An id that does not verify is
// ErrNotFound, like an unknown page. Unsubscribing again, or a contact
// that bounced, complained or was deleted meanwhile, changes nothing and
// succeeds.
func (s *Service) Unsubscribe(ctx context.Context, id string) error {
	accountID, contactID, emailID, ok := s.signer.ParseUnsubscribeID(id)
	if !ok {
		return pipeline.NotFound("unsubscribe link")
	}
	cs, errs, err := s.contacts.Resolve(ctx, accountID, []string{contactID})
	if err != nil {
		return err
	}
	if errs[0] != nil || cs[0].Status != contacts.Subscribed {
		return nil
	}
	// The event first: if the status write then fails, the retry records
	// the event again, where the other order would lose it.
	ev := &store.Event{Type: store.EventUnsubscribed, Timestamp: s.opt.Now().UTC(), EmailID: emailID, AccountID: accountID,
		Data: map[string]string{"contactId": contactID}}
	if err := s.store.RecordEvent(ctx, ev); err != nil {
		return pipeline.StorageError(err)
	}
	_, err = s.contacts.SetStatus(ctx, accountID, contactID, contacts.Unsubscribed)
	return err
}
