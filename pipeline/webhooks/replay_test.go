package webhooks

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// replayEnv is a Replayer over a test Redis, with an account's event
// stream written entry by entry at chosen times, as the recording script
// writes it (store.go: streamsScript).
type replayEnv struct {
	t   *testing.T
	ctx context.Context
	rdb *redis.Client
	st  *store.Store
	r   *Replayer
	key *store.Key
	now time.Time
}

const replayAccount = "acct_replay"

func newReplayEnv(t *testing.T, events ...string) *replayEnv {
	t.Helper()
	rdb := testkit.StartRedis(t).Client(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	clock := func() time.Time { return now }
	e := &replayEnv{t: t, ctx: context.Background(), rdb: rdb, st: store.New(rdb, clock), now: now,
		key: &store.Key{AccountID: replayAccount, Permission: store.PermissionFull, Mode: store.ModeLive}}
	e.r = &Replayer{Store: e.st, Now: clock, Logger: slog.New(slog.DiscardHandler)}
	e.endpoint("wh_1", events...)
	return e
}

func (e *replayEnv) endpoint(id string, events ...string) {
	e.t.Helper()
	if err := e.st.AddWebhook(e.ctx, replayAccount, &store.Webhook{ID: id, URL: "https://hooks.test/" + id, Events: events, Secret: "whsec_test", CreatedAt: e.now}, 20); err != nil {
		e.t.Fatal(err)
	}
}

// record adds ev to the account's stream as recorded at at (sequence seq
// within its millisecond), and returns its stream id. A legacy entry does
// not carry its global id.
func (e *replayEnv) record(at time.Time, seq int, ev store.Event, legacy bool) string {
	e.t.Helper()
	id := fmt.Sprintf("%d-%d", at.UnixMilli(), seq)
	raw, _ := json.Marshal(ev)
	values := []any{"account", replayAccount, "email", ev.EmailID, "type", string(ev.Type), "event", string(raw)}
	if !legacy {
		values = append(values, "gid", id)
	}
	if err := e.rdb.XAdd(e.ctx, &redis.XAddArgs{Stream: store.AccountEventsKey(0, replayAccount), ID: id, Values: values}).Err(); err != nil {
		e.t.Fatal(err)
	}
	return id
}

func (e *replayEnv) email(id, to string) {
	e.rdb.HSet(e.ctx, store.EmailKey(id), "toAddress", to)
}

// queued returns the queued deliveries in the order they come due.
func (e *replayEnv) queued() []*store.WebhookDelivery {
	e.t.Helper()
	ids, err := e.rdb.ZRange(e.ctx, store.WebhookDueKey(), 0, -1).Result()
	if err != nil {
		e.t.Fatal(err)
	}
	var out []*store.WebhookDelivery
	for _, id := range ids {
		d, err := e.st.WebhookDelivery(e.ctx, id)
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

// deliverAll removes every queued delivery, as the dispatcher does when
// the endpoint answers 2xx.
func (e *replayEnv) deliverAll() {
	for _, d := range e.queued() {
		if err := e.st.FinishWebhookDelivery(e.ctx, d.ID); err != nil {
			e.t.Fatal(err)
		}
	}
}

func (e *replayEnv) replay(in ReplayInput) *ReplayResult {
	e.t.Helper()
	res, err := e.r.Replay(e.ctx, e.key, "wh_1", in)
	if err != nil {
		e.t.Fatalf("replay %+v: %v", in, err)
	}
	return res
}

func (e *replayEnv) ago(d time.Duration) time.Time { return e.now.Add(-d) }

func stamp(t time.Time) string { return t.Format(time.RFC3339Nano) }

func ev(typ store.EventType, email string, at time.Time, data map[string]string) store.Event {
	return store.Event{Type: typ, Timestamp: at, EmailID: email, AccountID: replayAccount, Data: data}
}

// The window (since inclusive, until exclusive, on the time each event was
// recorded), the events (the endpoint's by default, or some of them), the
// fan-out's filter, the order, the original ids and bodies.
func TestReplaySelection(t *testing.T) {
	e := newReplayEnv(t, "email.delivered", "email.opened", "email.bounced", "account.paused")
	e.email("em_1", "one@example.test")
	e.email("em_3", "three@example.test")
	first := map[string]string{store.DataFirst: "true"}
	type entry struct {
		id string
		ev store.Event
	}
	add := func(at time.Time, seq int, ev store.Event, legacy bool) entry {
		return entry{e.record(at, seq, ev, legacy), ev}
	}
	delivered1 := add(e.ago(3*time.Hour), 0, ev(store.EventDelivered, "em_1", e.ago(3*time.Hour), nil), false)
	opened := add(e.ago(2*time.Hour), 0, ev(store.EventOpened, "em_1", e.ago(2*time.Hour), first), false)
	openedAgain := add(e.ago(2*time.Hour), 1, ev(store.EventOpened, "em_1", e.ago(2*time.Hour), nil), false)
	add(e.ago(2*time.Hour-time.Millisecond), 0, ev(store.EventOpened, "em_1", e.ago(2*time.Hour), map[string]string{store.DataFirst: "true", store.DataBotFiltered: "true"}), false)
	add(e.ago(90*time.Minute), 0, ev(store.EventClicked, "em_1", e.ago(90*time.Minute), first), false) // not subscribed
	bounced := add(e.ago(80*time.Minute), 0, ev(store.EventBounced, "em_2", e.ago(80*time.Minute), map[string]string{"reason": "550 5.1.1 no"}), false)
	add(e.ago(70*time.Minute), 0, ev(store.EventDelivered, "em_3", e.ago(70*time.Minute), nil), true) // before gid
	paused := add(e.ago(60*time.Minute), 0, store.Event{Type: store.EventAccountPaused, Timestamp: e.ago(time.Hour), AccountID: replayAccount, Data: map[string]string{"reason": "manual"}}, false)
	delivered4 := add(e.ago(30*time.Minute), 0, ev(store.EventDelivered, "em_4", e.ago(30*time.Minute), nil), false)

	want := func(res *ReplayResult, queued, unavailable int, entries ...entry) {
		t.Helper()
		if res.Queued != queued || res.Unavailable != unavailable || res.Pending != 0 || res.Truncated || res.EndpointID != "wh_1" || len(res.ID) < 10 {
			t.Errorf("result %+v, want %d queued, %d unavailable", res, queued, unavailable)
		}
		got := e.queued()
		if len(got) != len(entries) {
			t.Fatalf("%d queued, want %d", len(got), len(entries))
		}
		to := map[string]string{"em_1": "one@example.test", "em_3": "three@example.test"}
		for i, x := range entries {
			d := got[i]
			if d.ID != DeliveryID(x.id, "wh_1") || d.StreamID != x.id || d.EndpointID != "wh_1" || d.AccountID != replayAccount ||
				d.Event != EventName(x.ev.Type) || string(d.Body) != string(Body(x.ev, to[x.ev.EmailID])) || !d.CreatedAt.Equal(e.now) || d.Attempts != 0 {
				t.Errorf("delivery %d: %+v\nwant the event %s %+v", i, d, x.id, x.ev)
			}
		}
	}

	res := e.replay(ReplayInput{Since: stamp(e.ago(150 * time.Minute)), Until: stamp(e.ago(30 * time.Minute))})
	if !res.Since.Equal(e.ago(150*time.Minute)) || !res.Until.Equal(e.ago(30*time.Minute)) {
		t.Errorf("window %v – %v", res.Since, res.Until)
	}
	want(res, 3, 1, opened, bounced, paused)

	// Its deliveries are queued: the endpoint has no other replay yet.
	_, err := e.r.Replay(e.ctx, e.key, "wh_1", ReplayInput{Since: stamp(e.ago(time.Hour))})
	if pe := pipeline.AsError(err); pe.HTTPStatus != http.StatusConflict {
		t.Errorf("a replay while the last one's deliveries are queued: %v", err)
	}
	e.deliverAll()

	// Until defaults to now; one event type.
	res = e.replay(ReplayInput{Since: stamp(e.ago(4 * time.Hour)), Events: []string{"email.delivered"}})
	if !res.Until.Equal(e.now) {
		t.Errorf("until %v, want now", res.Until)
	}
	want(res, 2, 1, delivered1, delivered4)
	e.deliverAll()

	// Every open fires when the account says so; bots' never.
	if err := e.st.PatchTrackingSettings(e.ctx, replayAccount, map[string]any{store.SettingWebhookOnEveryOpen: true}); err != nil {
		t.Fatal(err)
	}
	want(e.replay(ReplayInput{Since: stamp(e.ago(150 * time.Minute)), Events: []string{"email.opened"}}), 2, 0, opened, openedAgain)
	e.deliverAll()

	// An event whose first delivery is still being retried is left to it.
	original := &store.WebhookDelivery{ID: DeliveryID(delivered4.id, "wh_1"), AccountID: replayAccount, EndpointID: "wh_1",
		Event: "email.delivered", Body: []byte(`{"original":true}`), Attempts: 3, CreatedAt: e.ago(40 * time.Minute)}
	if _, err := e.st.QueueWebhookDeliveries(e.ctx, delivered4.id, []*store.WebhookDelivery{original}, e.ago(time.Minute)); err != nil {
		t.Fatal(err)
	}
	res = e.replay(ReplayInput{Since: stamp(e.ago(40 * time.Minute))})
	if res.Queued != 0 || res.Pending != 1 {
		t.Errorf("with the original pending: %+v", res)
	}
	if got := e.queued(); len(got) != 1 || string(got[0].Body) != `{"original":true}` || got[0].Attempts != 3 {
		t.Errorf("the pending original was touched: %+v", got)
	}
}

// Past the cap, a replay stops at a millisecond boundary and says where
// the next starts: following Until sends every event once, in order.
func TestReplayCap(t *testing.T) {
	e := newReplayEnv(t, "email.delivered")
	e.r.maxEvents = 5
	start := e.ago(time.Hour)
	var all []string
	for ms := range 4 {
		for seq := range 3 {
			at := start.Add(time.Duration(ms) * time.Millisecond)
			all = append(all, e.record(at, seq, ev(store.EventDelivered, "em_"+strconv.Itoa(ms*3+seq), at, nil), false))
		}
	}
	// All 7 of one millisecond, over the cap: sent whole.
	crowded := start.Add(10 * time.Millisecond)
	for seq := range 7 {
		all = append(all, e.record(crowded, seq, ev(store.EventDelivered, "em_c"+strconv.Itoa(seq), crowded, nil), false))
	}

	var sent []string
	since := start
	var sizes []int
	for range 10 {
		res := e.replay(ReplayInput{Since: stamp(since)})
		for _, d := range e.queued() {
			sent = append(sent, d.StreamID)
		}
		sizes = append(sizes, res.Queued)
		e.deliverAll()
		if !res.Truncated {
			break
		}
		if !res.Until.After(since) {
			t.Fatalf("no progress: until %v", res.Until)
		}
		since = res.Until
	}
	if !slices.Equal(sent, all) {
		t.Errorf("sent\n%v\nwant each once, in order\n%v", sent, all)
	}
	// 3+3 (the second millisecond completes the first five), then 3+3,
	// then the crowded millisecond whole.
	if !slices.Equal(sizes, []int{6, 6, 7}) {
		t.Errorf("replays of %v events, want [6 6 7]", sizes)
	}
}

// What a replay refuses, and to whom.
func TestReplayRefusals(t *testing.T) {
	e := newReplayEnv(t, "email.delivered", "email.opened")
	e.r.Retention = 30 * 24 * time.Hour
	if err := e.st.AddWebhook(e.ctx, "acct_other", &store.Webhook{ID: "wh_other", URL: "https://x.test/", Events: []string{"email.delivered"}, CreatedAt: e.now}, 20); err != nil {
		t.Fatal(err)
	}
	hour := stamp(e.ago(time.Hour))
	for _, c := range []struct {
		name     string
		key      *store.Key
		endpoint string
		in       ReplayInput
		status   int
		message  string
	}{
		{"no since", e.key, "wh_1", ReplayInput{}, 400, "since: required"},
		{"bad since", e.key, "wh_1", ReplayInput{Since: "yesterday"}, 400, "since: must be an RFC 3339 time"},
		{"bad until", e.key, "wh_1", ReplayInput{Since: hour, Until: "now"}, 400, "until: must be an RFC 3339 time"},
		{"until before since", e.key, "wh_1", ReplayInput{Since: hour, Until: stamp(e.ago(2 * time.Hour))}, 400, "until: must be after since"},
		{"since in the future", e.key, "wh_1", ReplayInput{Since: stamp(e.now.Add(time.Hour))}, 400, "since: must be in the past"},
		{"both in the future", e.key, "wh_1", ReplayInput{Since: stamp(e.now.Add(time.Hour)), Until: stamp(e.now.Add(2 * time.Hour))}, 400, "since: must be in the past"},
		{"over 7 days", e.key, "wh_1", ReplayInput{Since: stamp(e.ago(8 * 24 * time.Hour)), Until: stamp(e.ago(time.Hour))}, 400, "since: a replay covers at most 7 days"},
		{"past the retention", e.key, "wh_1", ReplayInput{Since: stamp(e.ago(31 * 24 * time.Hour)), Until: stamp(e.ago(30 * 24 * time.Hour))}, 400, "since: events older than retention.records (30 days)"},
		{"not an event", e.key, "wh_1", ReplayInput{Since: hour, Events: []string{"email.read"}}, 400, `events: "email.read" is not an event`},
		{"not subscribed", e.key, "wh_1", ReplayInput{Since: hour, Events: []string{"email.bounced"}}, 400, `events: the endpoint does not subscribe to "email.bounced"`},
		{"unknown endpoint", e.key, "wh_nope", ReplayInput{Since: hour}, 404, "webhook not found"},
		{"another account's endpoint", e.key, "wh_other", ReplayInput{Since: hour}, 404, "webhook not found"},
		{"a sending key", &store.Key{AccountID: replayAccount, Permission: store.PermissionSending}, "wh_1", ReplayInput{Since: hour}, 403, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.r.Replay(e.ctx, c.key, c.endpoint, c.in)
			pe := pipeline.AsError(err)
			if err == nil || pe.HTTPStatus != c.status || len(pe.Message) < len(c.message) || pe.Message[:len(c.message)] != c.message {
				t.Errorf("got %v (%d), want %d %q", err, pe.HTTPStatus, c.status, c.message)
			}
		})
	}
}

// Redelivery of a delivery that succeeded (found through the index) and of
// one given up (through the list of given-up deliveries); 409 while it is
// queued, 404 for what the account never had.
func TestRedeliver(t *testing.T) {
	e := newReplayEnv(t, "email.delivered")
	e.endpoint("wh_2", "email.delivered")
	e.email("em_1", "one@example.test")
	d := &Dispatcher{Store: e.st, Now: func() time.Time { return e.now }}
	d.defaults()
	ctx := e.ctx
	// The fan-out of a recorded event (its group starts at the end of the
	// stream: created first).
	if err := e.st.EnsureWebhookGroup(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := e.st.AddEvent(ctx, ev(store.EventDelivered, "em_1", e.now, nil)); err != nil {
		t.Fatal(err)
	}
	events, err := e.st.ReadEvents(ctx, 0, "test", 10, time.Millisecond)
	if err == nil && len(events) != 1 {
		err = fmt.Errorf("%d events", len(events))
	}
	if err != nil {
		t.Fatal(err)
	}
	lk := &accountLookups{settings: map[string]store.TrackingSettings{}, endpoints: map[string][]*store.Webhook{}}
	if n, err := d.queue(ctx, lk, events[0]); n != 2 || err != nil {
		t.Fatal(n, err)
	}
	id1, id2 := DeliveryID(events[0].StreamID, "wh_1"), DeliveryID(events[0].StreamID, "wh_2")
	original, _ := e.st.WebhookDelivery(ctx, id1)

	conflict := func(id string) {
		t.Helper()
		if _, err := e.r.Redeliver(ctx, e.key, id); pipeline.AsError(err).HTTPStatus != http.StatusConflict {
			t.Errorf("redeliver %s while queued: %v", id, err)
		}
	}
	conflict(id1)
	// wh_1 got it; wh_2 gave up.
	_ = e.st.FinishWebhookDelivery(ctx, id1)
	del2, _ := e.st.WebhookDelivery(ctx, id2)
	del2.Attempts, del2.LastError = 9, "endpoint answered HTTP 503"
	_ = e.st.FailWebhookDelivery(ctx, del2, e.now)
	// Past the index's week only the given-up one is found.
	e.rdb.Del(ctx, store.WebhookIndexKey(replayAccount, store.StatsDay(e.now)))
	if _, err := e.r.Redeliver(ctx, e.key, id1); pipeline.AsError(err).HTTPStatus != http.StatusNotFound {
		t.Errorf("a delivered one out of the index: %v", err)
	}
	red, err := e.r.Redeliver(ctx, e.key, id2)
	if err != nil || red.ID != id2 || red.EndpointID != "wh_2" || red.Event != "email.delivered" {
		t.Fatalf("redeliver the given-up one: %+v %v", red, err)
	}
	got, _ := e.st.WebhookDelivery(ctx, id2)
	if got == nil || string(got.Body) != string(original.Body) || got.Attempts != 0 || got.EndpointID != "wh_2" || got.StreamID != events[0].StreamID {
		t.Errorf("redelivery %+v, want the original body %s", got, original.Body)
	}
	conflict(id2)

	// Within the week, a delivered one is found through the index (the
	// redelivery indexed id2 again; the fan-out indexes id1 likewise).
	_ = e.st.FinishWebhookDelivery(ctx, id2)
	if _, err := e.r.Redeliver(ctx, e.key, id2); err != nil {
		t.Errorf("redeliver a delivered one: %v", err)
	}

	other := &store.Key{AccountID: "acct_other", Permission: store.PermissionFull}
	for _, c := range []struct {
		key *store.Key
		id  string
	}{{other, id2}, {e.key, "whmsg_000000000000000000000000"}, {e.key, "whmsg_x"}, {e.key, "wh_1"}} {
		if _, err := e.r.Redeliver(ctx, c.key, c.id); pipeline.AsError(err).HTTPStatus != http.StatusNotFound {
			t.Errorf("redeliver %s as %s: %v, want 404", c.id, c.key.AccountID, err)
		}
	}
}

// fires decides as Dispatcher.queue does: each event goes through both.
func TestReplayFiresAsFanOut(t *testing.T) {
	e := newReplayEnv(t, Events...)
	d := &Dispatcher{Store: e.st, Now: func() time.Time { return e.now }}
	d.defaults()
	first := map[string]string{store.DataFirst: "true"}
	cases := []store.Event{
		ev(store.EventSent, "em_1", e.now, nil),
		ev(store.EventDelivered, "em_1", e.now, nil),
		ev(store.EventDeferred, "em_1", e.now, map[string]string{"reason": "451"}),
		ev(store.EventBounced, "em_1", e.now, nil),
		ev(store.EventFailed, "em_1", e.now, nil),
		ev(store.EventComplained, "em_1", e.now, nil),
		ev(store.EventUnsubscribed, "em_1", e.now, map[string]string{"contactId": "ct_1"}),
		ev(store.EventWarning, "em_1", e.now, nil),
		ev(store.EventOpened, "em_1", e.now, first),
		ev(store.EventOpened, "em_1", e.now, nil),
		ev(store.EventOpened, "em_1", e.now, map[string]string{store.DataFirst: "true", store.DataBotFiltered: "true"}),
		ev(store.EventOpened, "em_1", e.now, map[string]string{store.DataFirst: "true", "proxied": "true", "machineOpen": "apple_mpp"}),
		ev(store.EventClicked, "em_1", e.now, first),
		ev(store.EventClicked, "em_1", e.now, nil),
		ev(store.EventClicked, "em_1", e.now, map[string]string{store.DataBotFiltered: "true"}),
		ev(store.EventDelivered, "", e.now, nil),
		{Type: store.EventAccountPaused, Timestamp: e.now, AccountID: replayAccount},
		{Type: store.EventAccountResumed, Timestamp: e.now, AccountID: replayAccount},
		{Type: store.EventDelivered, Timestamp: e.now, EmailID: "em_1"}, // no account
		{Timestamp: e.now, EmailID: "em_1", AccountID: replayAccount},   // no type
	}
	seq := 0
	for _, every := range []bool{false, true} {
		settings := map[string]any{store.SettingWebhookOnEveryOpen: every, store.SettingWebhookOnEveryClick: every}
		if err := e.st.PatchTrackingSettings(e.ctx, replayAccount, settings); err != nil {
			t.Fatal(err)
		}
		ts, _ := e.st.TrackingSettings(e.ctx, replayAccount)
		for _, c := range cases {
			seq++
			lk := &accountLookups{settings: map[string]store.TrackingSettings{}, endpoints: map[string][]*store.Webhook{}}
			n, err := d.queue(e.ctx, lk, store.StreamEvent{StreamID: fmt.Sprintf("1-%d", seq), Event: c})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := fires(c, ts, &store.Webhook{}) && ValidEvent(EventName(c.Type)), n > 0; got != want {
				t.Errorf("every open/click %v, %+v: replay fires %v, fan-out queued %d", every, c, got, n)
			}
		}
	}
}
