package store

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
)

// messageFixture stores one message for the emails made by mutate (one
// per recipient), as Submit does, with content kept an hour.
type messageFixture struct {
	t   *testing.T
	rdb redis.UniversalClient
	s   *Store
	ctx context.Context
}

func newMessageFixture(t *testing.T) *messageFixture {
	rdb := testkit.RedisClient(t)
	s := New(rdb, time.Now)
	s.SetRetention(Retention{Content: time.Hour, Records: 2 * time.Hour})
	return &messageFixture{t: t, rdb: rdb, s: s, ctx: context.Background()}
}

// persist stores a message of mime to n recipients; each email is changed
// by mutate (may be nil) before it is written. It returns the message id
// and the email ids.
func (f *messageFixture) persist(mime []byte, n int, mutate func(i int, e *Email)) (string, []string) {
	f.t.Helper()
	m := NewMessage{ID: NewID("msg"), MIME: mime}
	var emails []NewEmail
	var ids []string
	for i := range n {
		e := &Email{ID: NewID("em"), AccountID: "acct_1", KeyID: "key_1", Mode: ModeLive, Status: StatusPending,
			ToAddress: "r@example.test", CreatedAt: time.Now().UTC(), Message: m.ID, MessageLen: int64(len(mime)),
			TrackOpens: true, TrackClicks: true}
		if mutate != nil {
			mutate(i, e)
		}
		emails = append(emails, NewEmail{Email: e})
		ids = append(ids, e.ID)
	}
	group := EmailGroup(ids)
	for i := range emails {
		if emails[i].Email.ScheduledAt != nil {
			emails[i].Group = group
		}
	}
	if err := f.s.PersistWith(f.ctx, emails, PersistOptions{Enqueue: true, Messages: []NewMessage{m}}); err != nil {
		f.t.Fatal(err)
	}
	return m.ID, ids
}

// ttl is the TTL of key: -1 without one, -2 when it does not exist.
func (f *messageFixture) ttl(key string) time.Duration {
	f.t.Helper()
	d, err := f.rdb.TTL(f.ctx, key).Result()
	if err != nil {
		f.t.Fatal(err)
	}
	if d < 0 {
		return d / time.Nanosecond // go-redis gives -1 and -2 as durations of that many ns
	}
	return d
}

// refs is the message's count of recipients not final, -1 when it has none.
func (f *messageFixture) refs(message string) int {
	f.t.Helper()
	n, err := f.rdb.Get(f.ctx, MessageRefsKey(message)).Int()
	if errors.Is(err, redis.Nil) {
		return -1
	}
	if err != nil {
		f.t.Fatal(err)
	}
	return n
}

// kept fails unless the message is stored without a TTL and counts want.
func (f *messageFixture) kept(what, message string, want int) {
	f.t.Helper()
	if d, n := f.ttl(MessageKey(message)), f.refs(message); d != -1 || n != want {
		f.t.Errorf("%s: message TTL %v, %d recipients counted; want no TTL and %d", what, d, n, want)
	}
}

// released fails unless the message has the content retention, and no count.
func (f *messageFixture) released(what, message string) {
	f.t.Helper()
	if d, n := f.ttl(MessageKey(message)), f.refs(message); d <= 59*time.Minute || d > time.Hour || n != -1 {
		f.t.Errorf("%s: message TTL %v, count %d; want about 1h and none", what, d, n)
	}
}

// TestMessageLivesUntilItsLastRecipientIsFinal: a message is stored once
// for its recipients, and starts to expire (retention.Content) when the
// last of them is final, whatever made it so: a delivery, a bounce, a
// failure, the end of a test-mode email. A second final status of one
// email (a late bounce after its delivery) does not count it twice.
func TestMessageLivesUntilItsLastRecipientIsFinal(t *testing.T) {
	f := newMessageFixture(t)
	mime := bytes.Repeat([]byte("x"), 100_000)
	msg, ids := f.persist(mime, 4, func(i int, e *Email) {
		if i == 3 {
			// A scheduled test-mode email, finished when its time comes.
			at := time.Now().Add(time.Hour).UTC()
			e.Mode, e.Status, e.ScheduledAt = ModeTest, StatusScheduled, &at
		}
	})
	if n, err := f.rdb.StrLen(f.ctx, MessageKey(msg)).Result(); err != nil || n != int64(len(mime)) {
		t.Fatalf("message stored with %d bytes (%v), want %d", n, err, len(mime))
	}
	for _, id := range ids {
		if n, _ := f.rdb.Exists(f.ctx, BodyKey(id)).Result(); n != 0 {
			t.Errorf("%s has a body of its own", id)
		}
		e, got, err := f.s.EmailWithBodyLen(f.ctx, id)
		if err != nil || got != int64(len(mime)) || e.Message != msg {
			t.Errorf("%s: body length %d, message %q (%v)", id, got, e.Message, err)
		}
		b, err := f.s.Body(f.ctx, e)
		if err != nil || !bytes.Equal(b, mime) {
			t.Errorf("%s: body of %d bytes (%v)", id, len(b), err)
		}
	}
	f.kept("stored", msg, 4)

	final := func(id string, status Status) {
		t.Helper()
		if err := f.s.UpdateEmail(f.ctx, id, map[string]any{FieldStatus: status}, &Event{Type: EventDelivered, Timestamp: time.Now(), AccountID: "acct_1"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.s.UpdateEmail(f.ctx, ids[0], map[string]any{FieldStatus: StatusSent}, nil); err != nil {
		t.Fatal(err)
	}
	f.kept("one sent", msg, 4)
	final(ids[0], StatusDelivered)
	f.kept("one delivered", msg, 3)
	final(ids[0], StatusBounced) // a late bounce of the same email
	f.kept("the same bounced later", msg, 3)
	final(ids[1], StatusFailed)
	f.kept("one failed", msg, 2)
	if err := f.s.FinishEmail(f.ctx, ids[3], map[string]any{FieldStatus: StatusSent}, nil); err != nil {
		t.Fatal(err)
	}
	f.kept("the test-mode one sent", msg, 1)
	final(ids[2], StatusBounced)
	f.released("the last bounced", msg)
	if b, err := f.s.Body(f.ctx, &Email{ID: ids[2], Message: msg}); err != nil || !bytes.Equal(b, mime) {
		t.Errorf("the released message is not readable until it expires: %d bytes, %v", len(b), err)
	}
}

// TestMessageOfEmailsFinalAtOnce: a message whose emails are all final as
// they are stored (suppressed recipients of a send, test-mode mail) starts
// to expire at once; one with a suppressed and a pending recipient counts
// the pending one only.
func TestMessageOfEmailsFinalAtOnce(t *testing.T) {
	f := newMessageFixture(t)
	msg, _ := f.persist([]byte("Subject: x\r\n\r\nx\r\n"), 2, func(_ int, e *Email) { e.Mode, e.Status = ModeTest, StatusSent })
	f.released("test mode", msg)
	msg, ids := f.persist([]byte("Subject: x\r\n\r\nx\r\n"), 2, func(i int, e *Email) {
		if i == 0 {
			e.Status = StatusSuppressed
		}
	})
	f.kept("one suppressed, one pending", msg, 1)
	if err := f.s.UpdateEmail(f.ctx, ids[0], map[string]any{FieldStatus: StatusSuppressed}, nil); err != nil {
		t.Fatal(err)
	}
	f.kept("the suppressed one updated", msg, 1)
	if err := f.s.UpdateEmail(f.ctx, ids[1], map[string]any{FieldStatus: StatusDelivered}, nil); err != nil {
		t.Fatal(err)
	}
	f.released("the pending one delivered", msg)
}

// TestCancelReleasesTheMessage: cancelling a scheduled submission to
// several recipients releases its message in the cancel script; a cancel
// again counts nothing twice.
func TestCancelReleasesTheMessage(t *testing.T) {
	f := newMessageFixture(t)
	at := time.Now().Add(time.Hour).UTC()
	msg, ids := f.persist([]byte("Subject: later\r\n\r\nx\r\n"), 3, func(_ int, e *Email) {
		e.Status, e.ScheduledAt = StatusScheduled, &at
	})
	f.kept("scheduled", msg, 3)
	res, err := f.s.CancelScheduled(f.ctx, ids, time.Now())
	if err != nil || !res.Cancelled {
		t.Fatalf("cancel: %+v %v", res, err)
	}
	f.released("cancelled", msg)
	if res, err := f.s.CancelScheduled(f.ctx, ids, time.Now()); err != nil || !res.Cancelled {
		t.Fatalf("cancel again: %+v %v", res, err)
	}
	f.released("cancelled again", msg)
	if n, err := f.rdb.Exists(f.ctx, MessageRefsKey(msg)).Result(); err != nil || n != 0 {
		t.Errorf("the count came back: %d %v", n, err)
	}
}

// TestOldLayoutRecord: a record written before messages (its own body
// under BodyKey, no message) is read, sized and released by its own key.
func TestOldLayoutRecord(t *testing.T) {
	f := newMessageFixture(t)
	body := []byte("Subject: old\r\n\r\n<img src=\"https://t.test/v1/track/open/em_old\">\r\n")
	e := &Email{ID: NewID("em"), AccountID: "acct_1", Mode: ModeLive, Status: StatusPending, CreatedAt: time.Now().UTC(),
		TrackOpens: true, Links: []string{"https://e.test/"}}
	if err := f.s.Persist(f.ctx, []NewEmail{{Email: e, Body: body}}, true); err != nil {
		t.Fatal(err)
	}
	got, n, err := f.s.EmailWithBodyLen(f.ctx, e.ID)
	if err != nil || n != int64(len(body)) || got.Message != "" {
		t.Fatalf("length %d, message %q, %v", n, got.Message, err)
	}
	if b, err := f.s.Body(f.ctx, got); err != nil || !bytes.Equal(b, body) {
		t.Fatalf("body %q, %v", b, err)
	}
	if err := f.s.UpdateEmail(f.ctx, e.ID, map[string]any{FieldStatus: StatusDelivered}, nil); err != nil {
		t.Fatal(err)
	}
	if d := f.ttl(BodyKey(e.ID)); d <= 59*time.Minute || d > time.Hour {
		t.Errorf("old body TTL %v, want about 1h", d)
	}
}
