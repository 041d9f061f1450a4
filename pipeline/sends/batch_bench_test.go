package sends_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/pigeonpost/pigeonpost/pipeline/compose"
	"github.com/pigeonpost/pigeonpost/pipeline/pipelinetest"
	"github.com/pigeonpost/pigeonpost/pipeline/sends"
)

// BenchmarkSendBatch1000: one POST /v1/sends/batch of 1,000 recipients,
// each with its personalizations and a contact made on first use, on a
// test Redis (make bench measures it against redis-server with
// appendfsync always, through HTTP).
func BenchmarkSendBatch1000(b *testing.B) {
	ctx := context.Background()
	p := pipelinetest.New(b, pipelinetest.Options{})
	k := p.Key(b, "acme", "sp_test_sendsbenchkey0000000000001")
	name, subject, from := "weekly", "Your summary, {{first_name | default: \"friend\"}}", "hello@acme.test"
	html := "<html><body><h1>Hello {{first_name | default: \"there\"}}</h1><p>Your total this week: {{total}}.</p>" +
		"<p><a href=\"https://acme.test/account\">Your account</a></p></body></html>"
	tpl, err := p.Compose.CreateTemplate(ctx, k, compose.TemplateFields{Name: &name, Subject: &subject, HTML: &html, From: &from})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; b.Loop(); i++ {
		batch := sends.Batch{Message: sends.Message{TemplateID: tpl.ID}, Recipients: make([]sends.Recipient, 1000)}
		for j := range batch.Recipients {
			batch.Recipients[j] = sends.Recipient{To: fmt.Sprintf("u%d-%d@example.test", i, j),
				Personalizations: map[string]string{"total": fmt.Sprintf("$%d", j)}}
		}
		out, err := p.Sends.SendBatch(ctx, k, batch, "")
		if err != nil || out.Sends[999].ID == "" {
			b.Fatalf("%v %+v", err, out.Sends[999])
		}
	}
}
