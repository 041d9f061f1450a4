package feedback_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"

	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/compose"
	"github.com/pigeonpost/pigeonpost/pipeline/contacts"
	"github.com/pigeonpost/pigeonpost/pipeline/feedback"
	"github.com/pigeonpost/pigeonpost/pipeline/pipelinetest"
	"github.com/pigeonpost/pigeonpost/pipeline/sends"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
	"github.com/pigeonpost/pigeonpost/tracking"
)

// report returns the fixture name about the email emailID, as signed by p.
func report(t *testing.T, p *pipelinetest.Parts, name, emailID string) *bytes.Reader {
	t.Helper()
	raw, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(bytes.ReplaceAll(raw, []byte("em_test1.Zm9vYmFyYmF6cXV1eDEyMzQ1Ng"), []byte(p.Signer.FeedbackID(emailID))))
}

// A complaint about a send marks its contact complained (later sends to
// it are suppressed), and only the account's own keys may report it; the
// whole stack's test (cmd/pigeonpost) covers the rest.
func TestComplaintAboutASend(t *testing.T) {
	ctx := context.Background()
	p := pipelinetest.New(t, pipelinetest.Options{})
	k := p.Key(t, "acme", "sp_test_feedbacktestkey000000000001")
	other := p.Key(t, "other", "sp_test_feedbacktestkey000000000002")
	name, subject, text, from := "t", "Hi", "t", "hello@acme.test"
	tpl, err := p.Compose.CreateTemplate(ctx, k, compose.TemplateFields{Name: &name, Subject: &subject, Text: &text, From: &from})
	if err != nil {
		t.Fatal(err)
	}
	sent, err := p.Sends.Send(ctx, k, sends.Request{Message: sends.Message{TemplateID: tpl.ID},
		Recipient: sends.Recipient{To: "reader@example.test"}}, "")
	if err != nil || sent.Error != nil {
		t.Fatalf("send: %v %+v", err, sent)
	}

	if _, err := p.Feedback.ReceiveFor(ctx, other, report(t, p, "arf-yahoo.eml", sent.ID)); !errors.Is(err, pipeline.ErrNotFound) {
		t.Errorf("another account's report: %v", err)
	}
	notSpam := bytes.Replace(mustRead(t, "testdata/arf-headers-only.eml"), []byte("Feedback-Type: abuse"), []byte("Feedback-Type: not-spam"), 1)
	notSpam = bytes.ReplaceAll(notSpam, []byte("em_test1.Zm9vYmFyYmF6cXV1eDEyMzQ1Ng"), []byte(p.Signer.FeedbackID(sent.ID)))
	if o, err := p.Feedback.ReceiveFor(ctx, k, bytes.NewReader(notSpam)); err != nil || o.Result != feedback.ResultIgnored {
		t.Errorf("a not-spam report: %v %+v", err, o)
	}
	o, err := p.Feedback.ReceiveFor(ctx, k, report(t, p, "arf-yahoo.eml", sent.ID))
	if err != nil || o.Result != feedback.ResultComplained || !o.Suppressed || o.EmailID != sent.ID {
		t.Fatalf("complaint: %v %+v", err, o)
	}
	c, err := p.Contacts.Get(ctx, k, sent.ContactID)
	if err != nil || c.Status != contacts.Complained {
		t.Errorf("contact after the complaint: %v %+v", err, c)
	}
	e, err := p.Store.Email(ctx, sent.ID)
	if err != nil || e.Status != store.StatusComplained {
		t.Errorf("email after the complaint: %v %+v", err, e)
	}
	again, err := p.Sends.Send(ctx, k, sends.Request{Message: sends.Message{TemplateID: tpl.ID},
		Recipient: sends.Recipient{To: sent.ContactID}}, "")
	if err != nil || again.Status != store.StatusSuppressed {
		t.Errorf("a send to the complained contact: %v %+v", err, again)
	}
}

// Reports that name no email of the account, or that are not reports,
// are refused.
func TestReportsThatChangeNothing(t *testing.T) {
	ctx := context.Background()
	p := pipelinetest.New(t, pipelinetest.Options{})
	k := p.Key(t, "acme", "sp_test_feedbacktestkey000000000003")

	unknown := report(t, p, "arf-headers-only.eml", "em_nothing")
	if _, err := p.Feedback.ReceiveFor(ctx, k, unknown); !errors.Is(err, pipeline.ErrNotFound) {
		t.Errorf("a report about an unknown email: %v", err)
	}
	forged := tracking.NewSigner([]byte("another secret")).FeedbackID("em_x")
	raw := bytes.ReplaceAll(mustRead(t, "testdata/dsn-postfix.eml"), []byte("em_test1.Zm9vYmFyYmF6cXV1eDEyMzQ1Ng"), []byte(forged))
	if _, err := p.Feedback.Receive(ctx, bytes.NewReader(raw)); !errors.Is(err, pipeline.ErrNotFound) {
		t.Errorf("a forged id: %v", err)
	}
	if _, err := p.Feedback.Receive(ctx, bytes.NewReader(mustRead(t, "testdata/not-report.eml"))); !errors.Is(err, pipeline.ErrBadMessage) {
		t.Errorf("an ordinary message: %v", err)
	}
	sending := &store.Key{AccountID: k.AccountID, Permission: store.PermissionSending}
	if _, err := p.Feedback.ReceiveFor(ctx, sending, bytes.NewReader(raw)); !errors.Is(err, pipeline.ErrForbidden) {
		t.Errorf("a sending key: %v", err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
