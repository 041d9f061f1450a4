package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/redis/go-redis/v9"

	"github.com/pigeonpost/pigeonpost/config"
	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// onCluster points the gateway at c by its redis+cluster:// URL; the
// stack's own redis-server stays unused.
func onCluster(c *testkit.RedisCluster) func(*config.Config) {
	return func(cfg *config.Config) { cfg.Redis.URL = c.URL() }
}

// TestClusterSubmitDeliverRecord: a gateway configured with a 3-master
// Redis Cluster and redis.shards 3 takes messages over SMTP and over REST,
// stores them in more than one shard, delivers them all to the sink,
// records their events, sends their webhooks and lists them as one
// index; its keys are spread over the masters. Every script and MULTI it
// ran was checked for one slot (the stack's SlotChecker), and ran on real
// cluster nodes, which refuse CROSSSLOT.
func TestClusterSubmitDeliverRecord(t *testing.T) {
	c := testkit.StartRedisCluster(t, 3, 0)
	s := webhookStack(t, onCluster(c), func(cfg *config.Config) { cfg.Redis.Shards = 3 })
	s.cluster = c
	recv := startReceiver(t)
	_, secret := s.CreateWebhook(recv.srv.URL+"/hooks", "email.delivered")

	var want []string
	shards := map[store.Shard]bool{}
	for i := range 5 {
		reply, err := testkit.SendMail(s.smtpClient(true, liveKey), s.From, []string{s.To},
			testkit.SimpleMessage(s.From, s.To, fmt.Sprintf("over smtp %d", i)))
		if err != nil {
			t.Fatal(err)
		}
		viaSMTP := queuedID(t, reply)
		viaREST := s.SendOK(liveKey, map[string]any{"from": s.From, "to": s.To, "subject": fmt.Sprintf("over rest %d", i), "text": "t"}, nil).ID
		want = append(want, viaSMTP, viaREST)
		shards[store.ShardOf(viaSMTP)], shards[store.ShardOf(viaREST)] = true, true
	}
	if len(shards) < 2 {
		t.Errorf("10 messages all in shard %v", shards)
	}

	s.sink.Wait(t, len(want), 20*time.Second)
	for _, id := range want {
		s.waitStatus(id, "delivered")
		var events struct{ Data []struct{ Type string } }
		s.JSON("GET", "/v1/emails/"+id+"/events", liveKey, nil, &events)
		if len(events.Data) == 0 || events.Data[len(events.Data)-1].Type != "delivered" {
			t.Errorf("%s: events %+v", id, events)
		}
	}
	var list struct{ Data []struct{ ID string } }
	s.JSON("GET", "/v1/emails?limit=100", liveKey, nil, &list)
	var listed []string
	for _, e := range list.Data {
		listed = append(listed, e.ID)
	}
	slices.Sort(listed)
	slices.Sort(want)
	if !slices.Equal(listed, want) {
		t.Errorf("GET /v1/emails lists %v, want %v", listed, want)
	}
	s.deliveryIdle()
	s.webhooksIdle()
	var hooked []string
	for _, r := range recv.requests("email.delivered") {
		checkSigned(t, r, secret)
		var body struct{ Data struct{ EmailID string } }
		if err := json.Unmarshal(r.body, &body); err != nil {
			t.Fatal(err)
		}
		hooked = append(hooked, body.Data.EmailID)
	}
	slices.Sort(hooked)
	if !slices.Equal(hooked, want) {
		t.Errorf("email.delivered webhooks for %v, want one each for %v", hooked, want)
	}

	// The gateway's keys are on more than one master: it used the cluster,
	// not one node of it.
	ctx := context.Background()
	var used atomic.Int32 // ForEachMaster calls in parallel
	err := c.Client(t).ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		if n, err := m.DBSize(ctx).Result(); err != nil {
			return err
		} else if n > 0 {
			used.Add(1)
		}
		return nil
	})
	if err != nil || used.Load() != 3 {
		t.Errorf("keys on %d masters (%v), want all 3", used.Load(), err)
	}
	if n, _ := s.redis.Client(t).DBSize(ctx).Result(); n != 0 {
		t.Errorf("the unused redis-server has %d keys: the gateway did not run on the cluster", n)
	}
}

// TestMinReplicasAckedWithoutReplicas: with redis.min_replicas_acked 1 and
// a Redis that has no replica, WAIT confirms nothing, so a submission is
// answered with a temporary error (451 4.3.0, 503): the client keeps its
// mail. The mail is stored on the master all the same and delivered; a
// retry with the same Message-ID stores no second copy, and is not told
// 250 either while no replica has the first.
func TestMinReplicasAckedWithoutReplicas(t *testing.T) {
	s := startStack(t, func(c *config.Config) {
		c.Redis.MinReplicasAcked = 1
		c.Redis.MinReplicasTimeout = 50 * time.Millisecond
	})
	msg := "Message-ID: <replicas@" + senderDomain + ">\r\n" + testkit.SimpleMessage(s.From, s.To, "unconfirmed")
	_, err := testkit.SendMail(s.smtpClient(true, liveKey), s.From, []string{s.To}, msg)
	testkit.WantSMTPError(t, err, 451, smtp.EnhancedCode{4, 3, 0})
	r := s.Call("POST", "/v1/emails", liveKey, nil, map[string]any{"from": s.From, "to": s.To, "subject": "s", "text": "t"})
	if r.Code != http.StatusServiceUnavailable {
		t.Errorf("REST send: %d %s, want 503", r.Code, r.Body)
	}

	s.sink.Wait(t, 2, 20*time.Second) // stored on the master: delivered
	_, err = testkit.SendMail(s.smtpClient(true, liveKey), s.From, []string{s.To}, msg)
	testkit.WantSMTPError(t, err, 451, smtp.EnhancedCode{4, 3, 0})
	s.deliveryIdle()
	if n := len(s.sink.Messages()); n != 2 {
		t.Errorf("%d messages at the sink, want 2: the retry stored a second copy", n)
	}
}

// TestMinReplicasAckedOnCluster: on a cluster with a replica per master,
// WAIT 1 is satisfied and submissions are accepted and delivered.
func TestMinReplicasAckedOnCluster(t *testing.T) {
	c := testkit.StartRedisCluster(t, 3, 1)
	s := startStack(t, onCluster(c), func(c *config.Config) {
		c.Redis.MinReplicasAcked = 1
		// A hang bound (a replica in sync answers at once), short enough
		// for WAIT to go in one pipeline with the write (read timeout 3 s).
		c.Redis.MinReplicasTimeout = 2 * time.Second
	})
	s.cluster = c
	msg := "Message-ID: <confirmed@" + senderDomain + ">\r\n" + testkit.SimpleMessage(s.From, s.To, "confirmed")
	reply, err := testkit.SendMail(s.smtpClient(true, liveKey), s.From, []string{s.To}, msg)
	if err != nil {
		t.Fatal(err)
	}
	viaREST := s.SendOK(liveKey, map[string]any{"from": s.From, "to": s.To, "subject": "s", "text": "t"}, nil).ID
	s.waitStatus(queuedID(t, reply), "delivered")
	s.waitStatus(viaREST, "delivered")
	// A retry's receipt is confirmed by the replicas too, and replayed.
	again, err := testkit.SendMail(s.smtpClient(true, liveKey), s.From, []string{s.To}, msg)
	if err != nil || queuedID(t, again) != queuedID(t, reply) {
		t.Errorf("retry: %q, %v; want the first receipt %q", again, err, reply)
	}
}
