package webhooks

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"

	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// Events are the webhook event names an endpoint can subscribe to: "email."
// and the type of the recorded event, or an account event's type.
var Events = []string{
	"email.sent", "email.delivered", "email.deferred", "email.bounced", "email.failed",
	"email.opened", "email.clicked", "email.complained", "email.unsubscribed",
	string(store.EventAccountPaused), string(store.EventAccountResumed),
}

// ValidEvent reports whether name is one of Events.
func ValidEvent(name string) bool { return slices.Contains(Events, name) }

// EventName returns the webhook event of a recorded event type.
func EventName(t store.EventType) string {
	if accountEvent(t) {
		return string(t)
	}
	return "email." + string(t)
}

// accountEvent reports an event about an account rather than one email.
func accountEvent(t store.EventType) bool {
	return t == store.EventAccountPaused || t == store.EventAccountResumed
}

// Body returns the JSON body of the webhook for ev, sent to toAddress:
//
//	{"event": "email.opened", "timestamp": "…",
//	 "data": {"emailId": "em_…", "toAddress": "…", "openedAt": "…"}}
//
// email.opened and email.clicked add the hit's classification (bot,
// proxied, machineOpen, rule: addClassification), email.clicked its linkUrl
// and linkIndex (a number); email.deferred,
// email.bounced and email.failed add the reason; email.unsubscribed the
// contactId. Every type has its
// <type>At field (deliveredAt, bouncedAt …). Nothing about the visitor (IP
// address, user agent) is ever sent.
func Body(ev store.Event, toAddress string) []byte {
	at := store.FormatTime(ev.Timestamp)
	if accountEvent(ev.Type) {
		return accountBody(ev, at)
	}
	var data object
	data.add("emailId", ev.EmailID)
	data.add("toAddress", toAddress)
	data.add(string(ev.Type)+"At", at)
	switch ev.Type {
	case store.EventClicked:
		data.add("linkUrl", ev.Data[store.DataLinkURL])
		index, _ := strconv.Atoi(ev.Data[store.DataLinkIndex])
		data.add("linkIndex", index)
		addClassification(&data, ev)
	case store.EventOpened:
		addClassification(&data, ev)
	case store.EventDeferred, store.EventBounced, store.EventFailed:
		if r, ok := ev.Data["reason"]; ok {
			data.add("reason", r)
		}
	case store.EventUnsubscribed:
		data.add("contactId", ev.Data["contactId"])
	}
	var body object
	body.add("event", EventName(ev.Type))
	body.add("timestamp", at)
	body.addRaw("data", data.bytes())
	return body.bytes()
}

// addClassification adds what tracking/bots.go made of a hit: bot (a
// scanner's or prefetch's, sent only to endpoints with machineEvents),
// proxied (fetched by an image proxy), machineOpen (the proxy's kind,
// null when none) and rule (the rule that matched, null for a person).
func addClassification(data *object, ev store.Event) {
	data.add("bot", ev.Data[store.DataBotFiltered] == "true")
	data.add("proxied", ev.Data[store.DataProxied] == "true")
	data.add("machineOpen", nullable(ev.Data[store.DataMachineOpen]))
	data.add("rule", nullable(ev.Data[store.DataFilterRule]))
}

// nullable is s, or JSON null for "".
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// accountBody is the body of an account event: its data are the event's,
// in key order (the reason and the figures of a pause):
//
//	{"event": "account.paused", "timestamp": "…",
//	 "data": {"bounceRate": "0.0712", "bounced": "57", …, "reason": "bounce_rate"}}
func accountBody(ev store.Event, at string) []byte {
	var data object
	keys := make([]string, 0, len(ev.Data))
	for k := range ev.Data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		data.add(k, ev.Data[k])
	}
	var body object
	body.add("event", EventName(ev.Type))
	body.add("timestamp", at)
	body.addRaw("data", data.bytes())
	return body.bytes()
}

// object builds a JSON object whose keys keep the order they were added in,
// the order the documentation shows.
type object struct{ buf bytes.Buffer }

func (o *object) key(k string) {
	if o.buf.Len() == 0 {
		o.buf.WriteByte('{')
	} else {
		o.buf.WriteByte(',')
	}
	o.value(k)
	o.buf.WriteByte(':')
}

// value writes v (a string or an int) as JSON, without the HTML escaping
// of encoding/json's default: a link's & stays &.
func (o *object) value(v any) {
	enc := json.NewEncoder(&o.buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	o.buf.Truncate(o.buf.Len() - 1) // the newline Encode adds
}

func (o *object) add(k string, v any) {
	o.key(k)
	o.value(v)
}

func (o *object) addRaw(k string, raw []byte) {
	o.key(k)
	o.buf.Write(raw)
}

func (o *object) bytes() []byte {
	if o.buf.Len() == 0 {
		return []byte("{}")
	}
	return append(o.buf.Bytes(), '}')
}
