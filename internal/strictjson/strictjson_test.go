package strictjson

import (
	"encoding/json"
	"testing"
)

type tracking struct {
	Opens  bool `json:"opens"`
	Clicks bool `json:"clicks"`
}

type embedded struct {
	TemplateID string `json:"templateId"`
}

type request struct {
	embedded
	To          []string          `json:"to"`
	ScheduledAt string            `json:"scheduledAt"`
	Tracking    *tracking         `json:"tracking"`
	Metadata    map[string]string `json:"metadata"`
	Items       []tracking        `json:"items"`
	Raw         json.RawMessage   `json:"raw"`
	Untagged    int
}

func TestMessage(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{`{"tracking":{"open":true}}`, `unknown field "tracking.open"; did you mean "tracking.opens"?`},
		{`{"trackng":{}}`, `unknown field "trackng"; did you mean "tracking"?`},
		{`{"scheduled_at":"x"}`, `unknown field "scheduled_at"; did you mean "scheduledAt"?`},
		{`{"template_id":"x"}`, `unknown field "template_id"; did you mean "templateId"?`},
		{`{"items":[{"opens":true},{"clikcs":true}]}`, `unknown field "items[1].clikcs"; did you mean "items[1].clicks"?`},
		{`{"zzz":1}`, `unknown field "zzz"`},
		// What encoding/json accepts is known: other cases, map keys,
		// what a RawMessage holds, untagged fields.
		{`{"TRACKING":{"OPENS":true},"metadata":{"any":"x"},"raw":{"x":1},"Untagged":1}`, `unknown field`},
	} {
		if got := Message([]byte(c.body), &request{}, ""); got != c.want {
			t.Errorf("%s: %q, want %q", c.body, got, c.want)
		}
	}
	if got := Message([]byte(`{"to2":[]}`), &request{}, "emails[3]."); got != `unknown field "emails[3].to2"; did you mean "emails[3].to"?` {
		t.Errorf("with a prefix: %q", got)
	}
}
