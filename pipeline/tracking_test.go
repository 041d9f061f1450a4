package pipeline

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
	"github.com/pigeonpost/pigeonpost/tracking"
)

func TestTrackingFor(t *testing.T) {
	rdb := testkit.StartRedis(t).Client(t)
	st := store.New(rdb, time.Now)
	svc := New(st, tracking.NewSigner([]byte("secret")), Options{Hostname: "gw.test", PublicURL: "https://t.gw.test"})
	k := testKey(t, st, "acme", "sp_live_trackingfortestkey000000001")
	ctx := context.Background()
	// The settings are written as the engagement package writes them;
	// CacheTTL 0, so that each step reads them again.
	d := &store.Domain{ID: store.NewID("dom"), Name: "acme.test", Status: "pending", CreatedAt: time.Now()}
	if err := st.PutDomain(ctx, k.AccountID, d); err != nil {
		t.Fatal(err)
	}
	yes, no := true, false
	msg := func(opens, clicks *bool) *submittedMessage {
		return &submittedMessage{from: "hello@acme.test", trackOpens: opens, trackClicks: clicks}
	}
	both := &Tracking{Opens: true, Clicks: true}

	steps := []struct {
		name      string
		setup     func()
		requested *Tracking
		msg       *submittedMessage
		opens     bool
		clicks    bool
		base      string
		warnings  []string
	}{
		{"nothing asked", nil, nil, msg(nil, nil), false, false, "", nil},
		{"REST options", nil, both, msg(nil, nil), true, true, "https://t.gw.test", nil},
		{"headers override REST", nil, both, msg(&no, nil), false, true, "https://t.gw.test", nil},
		{"SMTP headers alone", nil, nil, msg(&yes, &yes), true, true, "https://t.gw.test", nil},
		{"domain turns clicks off", func() {
			if err := st.PutDomainTracking(ctx, k.AccountID, d, &store.DomainTracking{OpenTracking: true, ClickTracking: false}); err != nil {
				t.Fatal(err)
			}
		}, both, msg(nil, nil), true, false, "https://t.gw.test", []string{warnClicksDisabled}},
		{"verified tracking domain is the URL host", func() {
			_ = st.PutTrackingDomain(ctx, k.AccountID, d, &store.TrackingDomain{Host: "t.acme.test", Status: "verified"})
		}, &Tracking{Opens: true}, msg(nil, nil), true, false, "https://t.acme.test", nil},
		{"account disabled: nothing, one warning", func() {
			if err := st.PatchTrackingSettings(ctx, k.AccountID, map[string]any{store.SettingTrackingEnabled: false}); err != nil {
				t.Fatal(err)
			}
		}, both, msg(nil, nil), false, false, "", []string{warnTrackingDisabled}},
		{"account disabled, nothing asked: no warning", nil, nil, msg(nil, nil), false, false, "", nil},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.setup != nil {
				st.setup()
			}
			plan, warnings, err := svc.trackingFor(ctx, k, st.requested, st.msg)
			if err != nil {
				t.Fatal(err)
			}
			if plan.Opens != st.opens || plan.Clicks != st.clicks || plan.baseURL != st.base || !slices.Equal(warnings, st.warnings) {
				t.Errorf("got %+v %q, want opens %v clicks %v base %q warnings %q", plan, warnings, st.opens, st.clicks, st.base, st.warnings)
			}
		})
	}
}

func TestWithHost(t *testing.T) {
	for base, want := range map[string]string{
		"https://t.gw.test":           "https://t.acme.test",
		"http://gw.test:8080/pp":      "http://t.acme.test:8080/pp",
		"https://[2001:db8::1]:8443/": "https://t.acme.test:8443/",
	} {
		if got := withHost(base, "t.acme.test"); got != want {
			t.Errorf("withHost(%q) = %q, want %q", base, got, want)
		}
	}
}
