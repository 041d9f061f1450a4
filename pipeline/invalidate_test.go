package pipeline

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// A message this version does not know is ignored, not misread.
func TestForgetUnknownChange(t *testing.T) {
	s := New(store.New(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}), time.Now), nil, Options{CacheTTL: time.Hour})
	for _, c := range []cacheChange{"", "key", "domain acct_1", "tracking a b", "account acct_1"} {
		if s.forget(c) {
			t.Errorf("forget(%q) = true", c)
		}
	}
	for _, c := range []cacheChange{keyChanged("key_1"), domainChanged("acct_1", "a.test"), trackingChanged("acct_1")} {
		if !s.forget(c) {
			t.Errorf("forget(%q) = false", c)
		}
	}
}
