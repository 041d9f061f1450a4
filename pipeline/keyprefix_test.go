package pipeline_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/account"
	"github.com/pigeonpost/pigeonpost/pipeline/pipelinetest"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// A key written with the Pigeon Perch prefix (pp_live_X, pp_test_X) is the
// stored key sp_live_X, sp_test_X: the same key, in the same mode, revoked
// with it. Other spellings are not aliases.
func TestAuthenticatePigeonPerchPrefix(t *testing.T) {
	opt := pipelinetest.Options{Pipeline: pipeline.Options{CacheTTL: time.Hour}}
	opt.Redis = testkit.StartRedis(t).Client(t)
	p := pipelinetest.New(t, opt)
	ctx := context.Background()
	owner := p.Key(t, "acme", "sp_live_keyprefixtestowner0000000001")
	live, liveSecret, err := p.Account.CreateKey(ctx, owner, account.KeyRequest{Name: "live", Mode: store.ModeLive, Permission: store.PermissionSending})
	if err != nil {
		t.Fatal(err)
	}
	test, testSecret, err := p.Account.CreateKey(ctx, owner, account.KeyRequest{Name: "test", Mode: store.ModeTest, Permission: store.PermissionSending})
	if err != nil {
		t.Fatal(err)
	}
	ppLive := "pp_live_" + strings.TrimPrefix(liveSecret, "sp_live_")
	ppTest := "pp_test_" + strings.TrimPrefix(testSecret, "sp_test_")

	for _, tc := range []struct {
		name, secret string
		want         *store.Key // nil: ErrAuthFailed
	}{
		{"sp_live_ as stored", liveSecret, live},
		{"pp_live_ spelling", ppLive, live},
		{"sp_test_ as stored", testSecret, test},
		{"pp_test_ spelling", ppTest, test},
		{"pp_live_ of a test key", "pp_live_" + strings.TrimPrefix(testSecret, "sp_test_"), nil},
		{"pp_test_ of a live key", "pp_test_" + strings.TrimPrefix(liveSecret, "sp_live_"), nil},
		{"upper-case PP_LIVE_", "PP_LIVE_" + strings.TrimPrefix(liveSecret, "sp_live_"), nil},
		{"pp_ without the mode", "pp_" + strings.TrimPrefix(liveSecret, "sp_live_"), nil},
		{"pp_live_ twice", "pp_live_" + ppLive, nil},
		{"bare suffix", strings.TrimPrefix(liveSecret, "sp_live_"), nil},
		{"unknown pp_live_ key", "pp_live_nosuchkey000000000000000001", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := p.Pipeline.Authenticate(ctx, tc.secret)
			if tc.want == nil {
				if !errors.Is(err, pipeline.ErrAuthFailed) {
					t.Fatalf("got %+v, %v; want ErrAuthFailed", k, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if k.ID != tc.want.ID || k.Mode != tc.want.Mode || k.AccountID != tc.want.AccountID {
				t.Errorf("got key %s (%s, %s), want %s (%s, %s)", k.ID, k.Mode, k.AccountID, tc.want.ID, tc.want.Mode, tc.want.AccountID)
			}
		})
	}

	// Both spellings are cached; revoking the key refuses both at once.
	if err := p.Account.DeleteKey(ctx, owner, live.ID); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{liveSecret, ppLive} {
		if _, err := p.Pipeline.Authenticate(ctx, s); !errors.Is(err, pipeline.ErrAuthFailed) {
			t.Errorf("%.8s… after revocation: %v, want ErrAuthFailed", s, err)
		}
	}
}
