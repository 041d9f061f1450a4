package sends_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline/compose"
	"github.com/pigeonpost/pigeonpost/pipeline/contacts"
	"github.com/pigeonpost/pigeonpost/pipeline/pipelinetest"
	"github.com/pigeonpost/pigeonpost/pipeline/sends"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// segmentSetup makes n subscribed contacts tagged "all", a segment of
// them and a template, with a test-mode key (nothing is delivered).
func segmentSetup(t *testing.T, n int) (*pipelinetest.Parts, *store.Key, string, sends.Message) {
	t.Helper()
	ctx := context.Background()
	p := pipelinetest.New(t, pipelinetest.Options{})
	k := p.Key(t, "acme", "sp_test_sendssegmenttestkey00000001")
	var csv strings.Builder
	csv.WriteString("email,first_name,tags\n")
	for i := range n {
		fmt.Fprintf(&csv, "c%d@example.test,C%d,all\n", i, i)
	}
	if res, err := p.Contacts.Import(ctx, k, contacts.CSV, strings.NewReader(csv.String())); err != nil || res.Created != n {
		t.Fatalf("import: %+v %v", res, err)
	}
	name := "everyone"
	seg, err := p.Contacts.CreateSegment(ctx, k, contacts.SegmentFields{Name: &name, Filter: &contacts.Filter{Tags: []string{"all"}}})
	if err != nil {
		t.Fatal(err)
	}
	tname, subject, text, from := "t", "Hi {{first_name}}", "t", "hello@acme.test"
	tpl, err := p.Compose.CreateTemplate(ctx, k, compose.TemplateFields{Name: &tname, Subject: &subject, Text: &text, From: &from})
	if err != nil {
		t.Fatal(err)
	}
	return p, k, seg.ID, sends.Message{TemplateID: tpl.ID}
}

// batchDone waits for the batch's fan-out to end and returns its emails'
// recipients.
func batchDone(t *testing.T, p *pipelinetest.Parts, batchID string) []string {
	t.Helper()
	ctx := context.Background()
	testkit.WaitFor(t, "the segment's sends", func() bool {
		b, err := p.Store.Batch(ctx, batchID)
		return err == nil && !b.FanningOut
	})
	ids := p.Redis.ZRange(ctx, store.BatchEmailsKey(batchID), 0, -1).Val()
	var to []string
	for _, id := range ids {
		e, err := p.Store.Email(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		to = append(to, e.ToAddress)
	}
	return to
}

// Two processes make a segment's sends together: each contact gets
// exactly one, across chunks.
func TestSegmentSendsExactlyOnceAcrossProcesses(t *testing.T) {
	const n = 1234 // three chunks
	p, k, segID, m := segmentSetup(t, n)
	other := sends.New(p.Store, p.Pipeline, p.Compose, p.Contacts, p.Signer, sends.Options{PublicURL: "https://t.test"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = other.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	sent, err := other.SendToSegment(context.Background(), k, m, segID, nil, "")
	if err != nil || sent.Count != n {
		t.Fatalf("%+v %v", sent, err)
	}
	to := batchDone(t, p, sent.BatchID)
	seen := map[string]bool{}
	for _, addr := range to {
		if seen[addr] {
			t.Fatalf("%s got two sends", addr)
		}
		seen[addr] = true
	}
	if len(seen) != n {
		t.Errorf("%d contacts got a send, want %d", len(seen), n)
	}
	if q := p.Redis.Exists(context.Background(), store.FanOutQueueKey(sent.BatchID), store.FanOutLeaseKey(sent.BatchID)).Val(); q != 0 {
		t.Errorf("the fan-out's queue or lease outlived it")
	}
}

// A fan-out accepted by a process that stopped before making it is made
// by another; one whose key was revoked meanwhile is given up.
func TestSegmentSendsLeftByAStoppedProcess(t *testing.T) {
	p, k, segID, m := segmentSetup(t, 3)
	stopped := sends.New(p.Store, p.Pipeline, p.Compose, p.Contacts, p.Signer, sends.Options{PublicURL: "https://t.test"})
	sent, err := stopped.SendToSegment(context.Background(), k, m, segID, map[string]string{"first_name": "all of you"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if to := batchDone(t, p, sent.BatchID); len(to) != 3 {
		t.Fatalf("%d sends made by the other process, want 3", len(to))
	}

	// The key is revoked before the fan-out is read (the request held it).
	other := p.Key(t, "acme", "sp_test_sendssegmenttestkey00000002")
	if err := p.Account.DeleteKey(context.Background(), k, other.ID); err != nil {
		t.Fatal(err)
	}
	sent, err = stopped.SendToSegment(context.Background(), other, m, segID, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if to := batchDone(t, p, sent.BatchID); len(to) != 0 {
		t.Errorf("%d sends made with a revoked key", len(to))
	}
}
