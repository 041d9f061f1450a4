package main

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// /healthz, which anyone may read, never carries Redis's address or reply
// when its settings cannot be read (issue 18): the log does.
func TestDurabilityUnknownNamesNoAddress(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: time.Second, MaxRetries: -1})
	defer rdb.Close()
	var log strings.Builder
	problems := durabilityProblems(context.Background(), rdb, false, slog.New(slog.NewTextHandler(&log, nil)))
	if len(problems) != 1 || problems[0] != errDurabilityUnknown || strings.Contains(problems[0], "127.0.0.1") {
		t.Errorf("problems %q", problems)
	}
	if !strings.Contains(log.String(), "127.0.0.1:1") {
		t.Errorf("the log lacks the error: %s", log.String())
	}
}
