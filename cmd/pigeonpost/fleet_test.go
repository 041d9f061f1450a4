package main

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/internal/testkit/resttest"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
	"github.com/pigeonpost/pigeonpost/pipeline/webhooks"
)

// Issue 15, item 4: gateways that are separate processes on one Redis
// behave as one gateway. Nothing here is shared but Redis: each child
// process has its own caches, workers, dispatchers and schedulers.

// gatewayProcess is one child gateway and clients of its listeners.
type gatewayProcess struct {
	cmd   *exec.Cmd
	addrs boundAddrs
	rest  *resttest.Client
	admin *resttest.Client
}

// startGateways starts n gateways with env (processStack's) and verifies
// senderDomain through the first; the stack's own REST client is bound to
// the first too.
func (s *stack) startGateways(env map[string]string, n int) []*gatewayProcess {
	s.t.Helper()
	env["PIGEONPOST_HTTP_ADMIN_LISTEN"] = "127.0.0.1:0"
	gws := make([]*gatewayProcess, n)
	for i := range gws {
		cmd, a := startProcess(s.t, env)
		gws[i] = &gatewayProcess{cmd: cmd, addrs: a,
			rest: resttest.New(s.t, "http://"+a.HTTP, liveKey), admin: resttest.New(s.t, "http://"+a.Admin, "")}
	}
	s.bind(gws[0].addrs)
	s.VerifyDomain(s.dns, senderDomain)
	return gws
}

// sendThrough posts one email through each gateway's REST API at once,
// perGateway times each, with the subject prefix-GATEWAY-N, and returns
// the statuses answered and the subjects answered 200.
func sendThrough(gws []*gatewayProcess, perGateway int, prefix string, headers map[string]string, extra map[string]any) (codes map[int]int, ok []string) {
	var mu sync.Mutex
	codes = map[int]int{}
	var wg sync.WaitGroup
	for g, gw := range gws {
		wg.Go(func() {
			for i := range perGateway {
				subject := fmt.Sprintf("%s%d-%d", prefix, g, i)
				body := map[string]any{"from": "hello@" + senderDomain, "to": "user@" + rcptDomain, "subject": subject, "text": "t"}
				for k, v := range extra {
					body[k] = v
				}
				r := gw.rest.Call("POST", "/v1/emails", liveKey, headers, body)
				mu.Lock()
				codes[r.Code]++
				if r.Code == http.StatusOK {
					ok = append(ok, subject)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return codes, ok
}

// deliveredSubjects counts the messages at the sink by subject.
func (s *stack) deliveredSubjects() map[string]int {
	n := map[string]int{}
	for _, m := range s.sink.Messages() {
		if _, rest, ok := strings.Cut(string(m.Data), "Subject: "); ok {
			subject, _, _ := strings.Cut(rest, "\r\n")
			n[subject]++
		}
	}
	return n
}

// TestFleetSharesOneState: three gateways, load spread over all of them.
//   - One Idempotency-Key sent to all three at once is one email.
//   - Scheduled emails are each released once, whichever process is due.
//   - Every message acknowledged over SMTP is delivered exactly once.
//   - delivery.max_connections_per_destination 1 holds across the fleet:
//     the destination never has two connections from it at once.
//   - Each email.delivered webhook is posted once.
//   - A monthly limit set through one gateway's admin API binds all three
//     at once, and exactly: the fleet accepts the limit and no more.
func TestFleetSharesOneState(t *testing.T) {
	s, env := processStack(t)
	env["PIGEONPOST_REDIS_SHARDS"] = "3" // each process reads each shard
	env["PIGEONPOST_DELIVERY_WORKERS"] = "2"
	env["PIGEONPOST_DELIVERY_MAX_CONNECTIONS_PER_DESTINATION"] = "1"
	env["PIGEONPOST_WEBHOOKS_ALLOW_PRIVATE_URLS"] = "true"
	env["PIGEONPOST_WEBHOOKS_ALLOW_HTTP"] = "true"
	env["PIGEONPOST_WEBHOOKS_RETRY_INITIAL"] = "100ms"
	gws := s.startGateways(env, 3)
	hook := startReceiver(t)
	s.CreateWebhook(hook.srv.URL, "email.delivered")

	// One key, three gateways, at once.
	codes, keyed := sendThrough(gws, 1, "keyed-", map[string]string{"Idempotency-Key": "fleet-1"}, nil)
	ids := map[string]bool{}
	for _, gw := range gws {
		// Each asks again, after the first has finished: the same email.
		r := gw.rest.Call("POST", "/v1/emails", liveKey, map[string]string{"Idempotency-Key": "fleet-1"},
			map[string]any{"from": "hello@" + senderDomain, "to": "user@" + rcptDomain, "subject": keyed[0], "text": "t"})
		var sent resttest.Sent
		r.Decode(t, &sent)
		ids[sent.ID] = true
	}
	if codes[http.StatusOK] == 0 || len(ids) != 1 {
		t.Errorf("one Idempotency-Key through three gateways: statuses %v, emails %v", codes, ids)
	}

	// Scheduled: due in a second, released by whichever process looks.
	at := time.Now().Add(time.Second).UTC().Format(time.RFC3339Nano)
	_, scheduled := sendThrough(gws, 3, "scheduled-", nil, map[string]any{"scheduled_at": at})

	smtpAddrs := make([]string, len(gws))
	for i, gw := range gws {
		smtpAddrs[i] = gw.addrs.SMTP
	}
	var turn atomic.Int64
	load := s.startLoad("fleet-", func() string { return smtpAddrs[turn.Add(1)%int64(len(smtpAddrs))] })
	load.waitFor(60)
	acked := load.finish()
	if dup, _ := s.checkLedger("fleet-", acked, time.Now()); dup != 0 {
		t.Errorf("%d messages delivered twice by a fleet nobody killed", dup)
	}

	// The scheduled ones were due a second after they were sent: wait
	// for each, then for the queue to be idle, before counting.
	testkit.WaitFor(t, "every scheduled email at the destination", func() bool {
		got := s.deliveredSubjects()
		return !slices.ContainsFunc(scheduled, func(subject string) bool { return got[subject] == 0 })
	})
	s.deliveryIdle()
	got := s.deliveredSubjects()
	for _, subject := range append(scheduled, keyed[0]) {
		if got[subject] != 1 {
			t.Errorf("%q delivered %d times, want once", subject, got[subject])
		}
	}
	if n := s.sink.Stats().MaxActive; n > 1 {
		t.Errorf("the destination had %d connections from the fleet at once; the limit is 1", n)
	}

	s.webhooksIdle()
	posted := map[string]int{}
	for _, r := range hook.requests("email.delivered") {
		posted[r.header.Get(webhooks.IDHeader)]++
	}
	delivered := len(s.sink.Messages())
	if len(posted) != delivered {
		t.Errorf("%d email.delivered webhooks for %d deliveries", len(posted), delivered)
	}
	for id, n := range posted {
		if n != 1 {
			t.Errorf("webhook %s posted %d times", id, n)
		}
	}

	// The operator sets a monthly limit through one gateway; the fleet
	// then accepts exactly what is left of it.
	var u struct{ Used int64 }
	gws[0].rest.JSON("GET", "/v1/usage", liveKey, nil, &u)
	const left = 7
	if code := gws[0].admin.JSON("PUT", "/admin/v1/accounts/default/monthly-limit", "", map[string]any{"monthlyLimit": u.Used + left}, nil); code != http.StatusOK {
		t.Fatalf("PUT monthly-limit: %d", code)
	}
	codes, _ = sendThrough(gws, 5, "monthly-", nil, nil)
	if codes[http.StatusOK] != left || codes[http.StatusTooManyRequests] != 3*5-left {
		t.Errorf("after a monthly limit leaving %d, the fleet answered %v", left, codes)
	}
}

// TestFleetRateLimitAndReclaim: the account's rate limit is one limit for
// the fleet, not one per process; and the queue entries a killed gateway
// held (in flight at the destination, or read and waiting for a worker)
// are taken over by the gateways left, within the recovery bound, without
// it ever coming back.
func TestFleetRateLimitAndReclaim(t *testing.T) {
	s, env := processStack(t)
	const burst = 6
	env["PIGEONPOST_LIMITS_RATE_PER_SECOND"] = "0.001" // nothing more within the test
	env["PIGEONPOST_LIMITS_BURST"] = fmt.Sprint(burst)
	env["PIGEONPOST_DELIVERY_WORKERS"] = "2"
	env["PIGEONPOST_REDIS_SHARDS"] = "3" // a killed process's entries reclaimed in each shard
	gws := s.startGateways(env, 3)

	held, release := s.sink.Hold("data")
	var inFlight atomic.Int64
	go func() {
		for range held {
			inFlight.Add(1)
		}
	}()
	codes, accepted := sendThrough(gws, burst, "rate-", nil, nil)
	if codes[http.StatusOK] != burst || codes[http.StatusTooManyRequests] != 2*burst {
		t.Errorf("three gateways, a burst of %d: answered %v", burst, codes)
	}

	// Wait until every entry is read by some gateway (the destination
	// holds the replies), then kill the gateway holding the most.
	rdb := s.redisClient()
	ctx := context.Background()
	owned := map[int][]string{} // pid → the emails of the entries it read
	testkit.WaitFor(t, "every queued message read by a gateway", func() bool {
		clear(owned)
		read := 0
		for k := range store.Shard(3) {
			pending, err := rdb.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: store.StreamKey(k), Group: store.GroupName,
				Start: "-", End: "+", Count: 100}).Result()
			if err != nil {
				return false
			}
			for _, p := range pending {
				m := rdb.XRangeN(ctx, store.StreamKey(k), p.ID, p.ID, 1).Val()
				if len(m) != 1 {
					return false
				}
				pid := consumerPID(t, p.Consumer)
				owned[pid] = append(owned[pid], m[0].Values["id"].(string))
				read++
			}
		}
		return read == len(accepted)
	})
	victim := slices.MaxFunc(gws, func(a, b *gatewayProcess) int {
		return len(owned[a.cmd.Process.Pid]) - len(owned[b.cmd.Process.Pid])
	})
	victimEmails := owned[victim.cmd.Process.Pid]
	// Each gateway's two workers take one message each to the destination,
	// where it is held; what a gateway read beyond that waits in it.
	atDestination := int64(0)
	for _, ids := range owned {
		atDestination += int64(min(2, len(ids)))
	}
	testkit.WaitFor(t, "the fleet's workers at the destination", func() bool { return inFlight.Load() == atDestination })
	heldByVictim := min(2, len(victimEmails))
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = victim.cmd.Wait()
	killed := time.Now()
	release()

	live := gws[0]
	if live == victim {
		live = gws[1]
	}
	for _, id := range victimEmails {
		testkit.WaitFor(t, "the killed gateway's email "+id+" delivered", func() bool {
			var e emailResp
			live.rest.JSON("GET", "/v1/emails/"+id, liveKey, nil, &e)
			return e.Status == "delivered"
		})
	}
	t.Logf("reclaim: the killed gateway's %d entries delivered %s after the kill", len(victimEmails), time.Since(killed).Round(100*time.Millisecond))
	s.deliveryIdle()
	got := s.deliveredSubjects()
	dup := 0
	for _, subject := range accepted {
		if got[subject] == 0 {
			t.Errorf("%q never delivered", subject)
		}
		dup += max(0, got[subject]-1)
	}
	if dup > heldByVictim {
		t.Errorf("%d duplicates; the killed gateway had %d deliveries in flight", dup, heldByVictim)
	}
}

// consumerPID is the process id in a delivery consumer's name
// (store.ConsumerName: host-pid-random).
func consumerPID(t *testing.T, consumer string) int {
	parts := strings.Split(consumer, "-")
	if len(parts) < 3 {
		t.Fatalf("consumer name %q", consumer)
	}
	pid, err := strconv.Atoi(parts[len(parts)-2])
	if err != nil {
		t.Fatalf("consumer name %q: %v", consumer, err)
	}
	return pid
}
