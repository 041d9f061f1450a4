package main

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/redis/go-redis/v9"

	"github.com/pigeonpost/pigeonpost/config"
	"github.com/pigeonpost/pigeonpost/internal/testkit"
)

// onCluster points the gateway at c by its redis+cluster:// URL; the
// stack's own redis-server stays unused.
func onCluster(c *testkit.RedisCluster) func(*config.Config) {
	return func(cfg *config.Config) { cfg.Redis.URL = c.URL() }
}

// TestClusterSubmitDeliverRecord: a gateway configured with a 3-master
// Redis Cluster takes a message over SMTP and one over REST, stores them,
// delivers both to the sink, records their events and sends their
// webhooks; its keys are spread over more than one master. Every script
// and MULTI it ran was checked for one slot (the stack's SlotChecker), and
// ran on real cluster nodes, which refuse CROSSSLOT.
func TestClusterSubmitDeliverRecord(t *testing.T) {
	c := testkit.StartRedisCluster(t, 3, 0)
	s := webhookStack(t, onCluster(c))
	s.cluster = c
	recv := startReceiver(t)
	_, secret := s.CreateWebhook(recv.srv.URL+"/hooks", "email.delivered")

	reply, err := testkit.SendMail(s.smtpClient(true, liveKey), s.From, []string{s.To}, testkit.SimpleMessage(s.From, s.To, "over smtp"))
	if err != nil {
		t.Fatal(err)
	}
	viaSMTP := queuedID(t, reply)
	viaREST := s.SendOK(liveKey, map[string]any{"from": s.From, "to": s.To, "subject": "over rest", "text": "t"}, nil).ID

	s.sink.Wait(t, 2, 20*time.Second)
	for _, id := range []string{viaSMTP, viaREST} {
		s.waitStatus(id, "delivered")
		var events struct{ Data []struct{ Type string } }
		s.JSON("GET", "/v1/emails/"+id+"/events", liveKey, nil, &events)
		if len(events.Data) == 0 || events.Data[len(events.Data)-1].Type != "delivered" {
			t.Errorf("%s: events %+v", id, events)
		}
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
	want := []string{viaSMTP, viaREST}
	slices.Sort(want)
	if !slices.Equal(hooked, want) {
		t.Errorf("email.delivered webhooks for %v, want one each for %v", hooked, want)
	}

	// The gateway's keys are on more than one master: it used the cluster,
	// not one node of it.
	ctx := context.Background()
	var used atomic.Int32 // ForEachMaster calls in parallel
	err = c.Client(t).ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		if n, err := m.DBSize(ctx).Result(); err != nil {
			return err
		} else if n > 0 {
			used.Add(1)
		}
		return nil
	})
	if err != nil || used.Load() < 2 {
		t.Errorf("keys on %d masters (%v), want at least 2", used.Load(), err)
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
		c.Redis.MinReplicasTimeout = 10 * time.Second // a hang bound: a replica in sync answers at once
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
