package smtpd_test

import (
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/feedback"
	"github.com/pigeonpost/pigeonpost/smtpd"
)

// fakeUnsubscriber records the ids it is given; "good" is the only valid
// one, "down" fails as storage does.
type fakeUnsubscriber struct {
	mu  sync.Mutex
	ids []string
}

func (f *fakeUnsubscriber) Unsubscribe(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ids = append(f.ids, id)
	switch id {
	case "good":
		return nil
	case "down":
		return pipeline.ErrUnavailable
	}
	return pipeline.NotFound("unsubscribe link")
}

// The unsubscribe mailbox takes mail for unsubscribe@hostname only, with
// no AUTH, and hands the id of the subject to the Unsubscriber.
func TestUnsubscribeMailbox(t *testing.T) {
	u := &fakeUnsubscriber{}
	srv := smtpd.NewMailboxServer(u, nil, smtpd.MailboxOptions{Hostname: "GW.test", ReportsMailbox: "reports@gw.test"})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	if srv.Mailbox() != "unsubscribe@gw.test" {
		t.Errorf("mailbox %q", srv.Mailbox())
	}
	send := func(to, subject string) error {
		c := testkit.DialSMTP(t, ln.Addr().String(), testkit.SMTPGreeted, "")
		_, err := testkit.SendMail(c, "someone@mail.test", []string{to},
			"From: someone@mail.test\r\nTo: "+to+"\r\nSubject: "+subject+"\r\n\r\nunsubscribe me\r\n")
		return err
	}
	if err := send("Unsubscribe@gw.test", "unsubscribe good"); err != nil {
		t.Errorf("a valid request: %v", err)
	}
	if err := send("unsubscribe@gw.test", "Re: unsubscribe =?utf-8?q?good?="); err != nil {
		t.Errorf("a reply with an encoded subject: %v", err)
	}
	testkit.WantSMTPError(t, send("postmaster@gw.test", "unsubscribe good"), 550, smtp.EnhancedCode{5, 1, 1})
	testkit.WantSMTPError(t, send("unsubscribe@other.test", "unsubscribe good"), 550, smtp.EnhancedCode{5, 1, 1})
	// Without a ReportReceiver there is no reports mailbox.
	testkit.WantSMTPError(t, send("reports@gw.test", "report"), 550, smtp.EnhancedCode{5, 1, 1})
	testkit.WantSMTPError(t, send("unsubscribe@gw.test", "hello"), 550, smtp.EnhancedCode{5, 6, 0})
	testkit.WantSMTPError(t, send("unsubscribe@gw.test", "unsubscribe forged"), 550, smtp.EnhancedCode{5, 6, 0})
	testkit.WantSMTPError(t, send("unsubscribe@gw.test", "unsubscribe down"), 451, smtp.EnhancedCode{4, 3, 0})
	u.mu.Lock()
	defer u.mu.Unlock()
	if want := []string{"good", "good", "forged", "down"}; len(u.ids) != len(want) || u.ids[0] != "good" || u.ids[2] != "forged" {
		t.Errorf("ids %q, want %q", u.ids, want)
	}
}

// fakeReports reads each report whole; a report saying "unreadable" is
// refused as feedback.Service refuses one.
type fakeReports struct {
	mu  sync.Mutex
	got []string
}

func (f *fakeReports) Receive(_ context.Context, r io.Reader) (*feedback.Outcome, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, string(b))
	if strings.Contains(string(b), "unreadable") {
		return nil, pipeline.ErrBadMessage.With("not a report")
	}
	return &feedback.Outcome{EmailID: "em_1", Result: feedback.ResultComplained}, nil
}

// The reports mailbox hands what it gets to the ReportReceiver, large
// reports included, and refuses with the receiver's words; the
// unsubscribe mailbox still works beside it.
func TestReportsMailbox(t *testing.T) {
	rr := &fakeReports{}
	srv := smtpd.NewMailboxServer(&fakeUnsubscriber{}, rr, smtpd.MailboxOptions{Hostname: "gw.test", ReportsMailbox: "FBL@Reports.GW.test"})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	send := func(to, body string) error {
		c := testkit.DialSMTP(t, ln.Addr().String(), testkit.SMTPGreeted, "")
		_, err := testkit.SendMail(c, "", []string{to}, "From: fbl@isp.test\r\nTo: "+to+"\r\nSubject: report\r\n\r\n"+body+"\r\n")
		return err
	}
	large := strings.Repeat("an original with its attachment, returned whole\r\n", 40000) // 2 MB
	if err := send("fbl@reports.gw.test", large); err != nil {
		t.Errorf("a large report: %v", err)
	}
	testkit.WantSMTPError(t, send("fbl@reports.gw.test", "unreadable"), 550, smtp.EnhancedCode{5, 6, 0})
	if err := send("unsubscribe@gw.test", "x"); err == nil {
		t.Error("an unsubscribe mail without an id was accepted")
	}
	rr.mu.Lock()
	defer rr.mu.Unlock()
	if len(rr.got) != 2 || !strings.Contains(rr.got[0], "Subject: report") || len(rr.got[0]) < len(large) {
		t.Errorf("reports received: %d", len(rr.got))
	}
}
