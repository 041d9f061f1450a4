package main

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/redis/go-redis/v9"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
)

// TestRedisRefusesWrites (issue 17, F11 and F12): Redis's memory or, under
// AOF, its disk fills. Out of memory (noeviction) it answers OOM; with the
// disk full under appendfsync everysec it answers MISCONF: either way SMTP
// gets 452 4.3.1, REST 503 insufficient_storage, and /healthz says Redis
// refuses writes. With the disk full under always, Redis exits at the
// write that fails, before answering it: the client gets 451 4.3.0, as
// with Redis down. No 250 is given for what was not stored; once there is
// room again (or Redis is restarted) the gateway takes mail without an
// operator, and the message acknowledged before the fault is delivered.
func TestRedisRefusesWrites(t *testing.T) {
	ctx := context.Background()
	config := func(t *testing.T, rdb *redis.Client, kv ...string) {
		t.Helper()
		for i := 0; i < len(kv); i += 2 {
			if err := rdb.ConfigSet(ctx, kv[i], kv[i+1]).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	cases := []struct {
		name      string
		fill      func(*testing.T, *stack, *redis.Client)
		refusal   string // the error reply Redis gives; "" when it exits
		code      int
		enhanced  smtp.EnhancedCode
		makeSpace func(*testing.T, *stack, *redis.Client)
	}{{
		name: "memory full",
		fill: func(t *testing.T, _ *stack, rdb *redis.Client) {
			config(t, rdb, "maxmemory-policy", "noeviction", "maxmemory", "1")
		},
		refusal: "OOM",
		code:    452, enhanced: smtp.EnhancedCode{4, 3, 1},
		makeSpace: func(t *testing.T, _ *stack, rdb *redis.Client) { config(t, rdb, "maxmemory", "0") },
	}, {
		name: "disk full, appendfsync everysec",
		fill: func(t *testing.T, s *stack, rdb *redis.Client) {
			config(t, rdb, "appendfsync", "everysec")
			s.redis.DiskFull()
		},
		refusal: "MISCONF",
		code:    452, enhanced: smtp.EnhancedCode{4, 3, 1},
		makeSpace: func(_ *testing.T, s *stack, _ *redis.Client) { s.redis.DiskFreed() },
	}, {
		name: "disk full, appendfsync always",
		fill: func(_ *testing.T, s *stack, _ *redis.Client) { s.redis.DiskFull() },
		code: 451, enhanced: smtp.EnhancedCode{4, 3, 0},
		makeSpace: func(_ *testing.T, s *stack, _ *redis.Client) { s.redis.Restart() }, // its supervisor's part
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := startStack(t)
			from, to := "hello@"+senderDomain, "user@"+rcptDomain
			client := s.smtpClient(true, liveKey)
			held, release := s.sink.Hold("data")
			defer release()
			reply, err := testkit.SendMail(client, from, []string{to}, testkit.SimpleMessage(from, to, "before"))
			if err != nil {
				t.Fatal(err)
			}
			before := queuedID(t, reply)
			<-held // its delivery is in flight when the fault comes
			rdb := s.redis.Client(t)

			c.fill(t, s, rdb)
			if c.refusal != "" {
				// Under everysec the write that finds the disk full is still
				// answered (it is the second everysec may lose); the ones
				// after it are refused.
				testkit.WaitFor(t, "Redis to refuse writes", func() bool {
					err := rdb.Set(ctx, "refusal-probe", "x", 0).Err()
					return err != nil && strings.HasPrefix(err.Error(), c.refusal+" ")
				})
			}
			// The destination accepts the message in flight; recording that
			// fails, and must not lead to sending it twice.
			release()
			testkit.WaitFor(t, "the delivery's record to be refused", func() bool {
				return strings.Contains(s.logs.String(), "recording a delivery failed")
			})
			_, err = testkit.SendMail(client, from, []string{to}, testkit.SimpleMessage(from, to, "refused"))
			testkit.WantSMTPError(t, err, c.code, c.enhanced)
			var health struct{ Redis string }
			if code := s.JSON("GET", "/healthz", "", nil, &health); code != http.StatusServiceUnavailable {
				t.Errorf("/healthz while Redis refuses writes: %d", code)
			}
			if c.refusal != "" {
				var apiErr struct{ Error struct{ Code string } }
				code := s.JSON("POST", "/v1/emails", liveKey, map[string]any{"from": from, "to": to, "subject": "x", "text": "y"}, &apiErr)
				if code != http.StatusServiceUnavailable || apiErr.Error.Code != "insufficient_storage" {
					t.Errorf("REST while Redis refuses writes: %d %+v", code, apiErr)
				}
				if health.Redis != "refusing writes" {
					t.Errorf("/healthz says redis %q, want refusing writes", health.Redis)
				}
			}

			c.makeSpace(t, s, rdb)
			testkit.WaitFor(t, "a 250 once Redis has room", func() bool {
				if err := client.Reset(); err != nil {
					t.Fatal(err)
				}
				reply, err = testkit.SendMail(client, from, []string{to}, testkit.SimpleMessage(from, to, "after"))
				if se, ok := err.(*smtp.SMTPError); err != nil && (!ok || se.Code/100 != 4) {
					t.Fatalf("while Redis recovers: %v, want a 4xx or a 250", err)
				}
				return err == nil
			})
			s.waitStatus(queuedID(t, reply), "delivered")
			s.waitStatus(before, "delivered")
			if code := s.JSON("GET", "/healthz", "", nil, nil); code != http.StatusOK {
				t.Errorf("/healthz after the fault: %d", code)
			}
			s.deliveryIdle()
			var subjects []string
			for _, m := range s.sink.Messages() {
				_, subject, _ := strings.Cut(string(m.Data), "Subject: ")
				subject, _, _ = strings.Cut(subject, "\r\n")
				subjects = append(subjects, subject)
			}
			if len(subjects) != 2 {
				t.Errorf("the sink got %q, want before and after the fault, once each", subjects)
			}
		})
	}
}

// TestRedisSlow (issue 17, point 3): Redis stalls (DEBUG SLEEP 7, longer
// than the client's read timeout of 5 s). /healthz is not ready within a second
// while it lasts; a message submitted meanwhile gets a 250 only if it was
// stored, else a 4xx; afterwards mail flows without an operator and every
// acknowledged message is delivered once. A submission answered 451 may
// still have been stored when Redis woke: it is delivered, and a client
// that sends it again makes the duplicate at-least-once allows (over REST
// an Idempotency-Key prevents it).
func TestRedisSlow(t *testing.T) {
	s := startStack(t)
	from, to := "hello@"+senderDomain, "user@"+rcptDomain
	client := s.smtpClient(true, liveKey)
	opts, err := redis.ParseURL(s.redis.URL())
	if err != nil {
		t.Fatal(err)
	}
	opts.MaxRetries = -1 // go-redis re-sends a command whose reply timed out: one sleep, not four
	opts.ReadTimeout = 10 * time.Second
	sleeper := redis.NewClient(opts)
	defer sleeper.Close()
	impatientOpts := *opts
	impatientOpts.ReadTimeout = 100 * time.Millisecond
	impatient := redis.NewClient(&impatientOpts)
	defer impatient.Close()
	slept := make(chan error, 1)
	go func() { slept <- sleeper.Do(context.Background(), "DEBUG", "SLEEP", "7").Err() }()
	testkit.WaitFor(t, "Redis to be asleep", func() bool { return impatient.Ping(context.Background()).Err() != nil })

	var health struct{ Redis string }
	if code := s.JSON("GET", "/healthz", "", nil, &health); code != http.StatusServiceUnavailable || health.Redis != "unreachable" {
		t.Errorf("/healthz while Redis sleeps: %d, redis %q", code, health.Redis)
	}
	acked := []string{}
	reply, err := testkit.SendMail(client, from, []string{to}, testkit.SimpleMessage(from, to, "while asleep"))
	if err == nil {
		acked = append(acked, queuedID(t, reply))
	} else {
		testkit.WantSMTPError(t, err, 451, smtp.EnhancedCode{4, 3, 0})
	}
	t.Logf("the submission while Redis slept got: %v", cmp.Or(err, error(errors.New("250"))))
	<-slept

	reply, err = testkit.SendMail(client, from, []string{to}, testkit.SimpleMessage(from, to, "awake"))
	if err != nil {
		t.Fatal(err)
	}
	acked = append(acked, queuedID(t, reply))
	for _, id := range acked {
		s.waitStatus(id, "delivered")
	}
	if code := s.JSON("GET", "/healthz", "", nil, nil); code != http.StatusOK {
		t.Errorf("/healthz after the stall: %d", code)
	}
	s.deliveryIdle()
	if n := len(s.sink.Messages()); n > 2 {
		t.Errorf("the sink got %d messages, want each of the two at most once", n)
	}
}
