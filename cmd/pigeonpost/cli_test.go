package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

func TestCLIAccountsKeysDomains(t *testing.T) {
	r := testkit.StartRedis(t)
	env := func(k string) string {
		if k == "PIGEONPOST_REDIS_URL" {
			return r.URL()
		}
		return ""
	}
	ctx := context.Background()
	cli := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(ctx, args, &out, env)
		return out.String(), err
	}

	out, err := cli("accounts", "create", "acme")
	if err != nil {
		t.Fatal(err)
	}
	secret := regexp.MustCompile(`sp_live_[a-z2-7]+`).FindString(out)
	if secret == "" {
		t.Fatalf("no key printed: %q", out)
	}
	k, err := store.New(r.Client(t), nil).KeyBySecret(ctx, secret)
	if err != nil || k.Permission != store.PermissionFull {
		t.Fatalf("printed key not stored as a full key: %v %+v", err, k)
	}
	if _, err := cli("accounts", "create", "acme"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second create: %v", err)
	}

	out, err = cli("keys", "create", "--account", "acme", "--name", "ci", "--mode", "test", "--permission", "sending")
	if err != nil || !strings.HasPrefix(out, "sp_test_") {
		t.Errorf("keys create: %q %v", out, err)
	}

	out, err = cli("domains", "add", "--account", "acme", "mail.acme.test")
	if err != nil || !strings.Contains(out, "pigeonpost._domainkey.mail.acme.test") || !strings.Contains(out, "pending") {
		t.Errorf("domains add: %q %v", out, err)
	}

	if err := run(ctx, []string{"accounts", "create", "y"}, &bytes.Buffer{}, func(string) string { return "" }); err == nil ||
		!strings.Contains(err.Error(), "redis.url") {
		t.Errorf("without redis.url: %v", err)
	}
}
