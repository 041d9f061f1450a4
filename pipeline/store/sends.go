package store

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Batch groups the sends of one batch request, or of one send to a
// segment, whose emails are made in the background.
type Batch struct {
	ID         string
	AccountID  string
	TemplateID string
	SegmentID  string // set for a send to a segment
	// Total is the number of recipients: of the request, or the
	// subscribed contacts of the segment when it was sent to.
	Total      int
	FanningOut bool // a segment's sends are still being made
	// Job is what the fan-out of a segment's sends needs to make them
	// (the sends package's JSON), kept while FanningOut.
	Job       []byte
	CreatedAt time.Time
}

// fieldBatchJob is the field of a batch's hash that holds its Job.
const fieldBatchJob = "job"

func (b *Batch) hash() map[string]any {
	h := map[string]any{
		"id": b.ID, "accountId": b.AccountID, "templateId": b.TemplateID, "segmentId": b.SegmentID,
		"total": b.Total, "fanningOut": boolField(b.FanningOut), "createdAt": FormatTime(b.CreatedAt),
	}
	if b.Job != nil {
		h[fieldBatchJob] = b.Job
	}
	return h
}

// PutBatch writes a batch record on its own: PersistWith writes it with
// the emails where there are any.
func (s *Store) PutBatch(ctx context.Context, b *Batch) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		s.writeBatch(ctx, p, b)
		return nil
	})
	return err
}

// writeBatch queues the writes of a batch record. With a retention of
// records, the batch and its index expire after its emails can have.
func (s *Store) writeBatch(ctx context.Context, p redis.Pipeliner, b *Batch) {
	p.HSet(ctx, BatchKey(b.ID), b.hash())
	if s.retention.Records > 0 {
		ttl := s.retention.Records + 31*24*time.Hour // as ScanEmails trims the index
		p.Expire(ctx, BatchKey(b.ID), ttl)
		p.Expire(ctx, BatchEmailsKey(b.ID), ttl)
	}
}

// Batch returns a batch record; ErrNotFound if unknown.
func (s *Store) Batch(ctx context.Context, id string) (*Batch, error) {
	m, err := s.rdb.HGetAll(ctx, BatchKey(id)).Result()
	if err != nil {
		return nil, err
	}
	if len(m) == 0 {
		return nil, ErrNotFound
	}
	b := &Batch{ID: m["id"], AccountID: m["accountId"], TemplateID: m["templateId"], SegmentID: m["segmentId"],
		FanningOut: m["fanningOut"] == "1", Job: []byte(m[fieldBatchJob])}
	b.Total, _ = strconv.Atoi(m["total"])
	if t := parseTime(m["createdAt"]); t != nil {
		b.CreatedAt = *t
	}
	return b, nil
}

// BatchStatusCounts counts the emails of a batch by status, reading their
// statuses 500 at a time. Emails whose records expired are not counted.
func (s *Store) BatchStatusCounts(ctx context.Context, batchID string) (map[Status]int, error) {
	counts := map[Status]int{}
	const chunk = 500
	for start := int64(0); ; start += chunk {
		ids, err := s.rdb.ZRange(ctx, BatchEmailsKey(batchID), start, start+chunk-1).Result()
		if err != nil {
			return nil, err
		}
		if len(ids) == 0 {
			return counts, nil
		}
		cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, id := range ids {
				p.HGet(ctx, EmailKey(id), FieldStatus)
			}
			return nil
		})
		if err != nil && err != redis.Nil {
			return nil, err
		}
		for _, c := range cmds {
			if st, err := c.(*redis.StringCmd).Result(); err == nil {
				counts[Status(st)]++
			}
		}
		if len(ids) < chunk {
			return counts, nil
		}
	}
}

// RecordEvent records ev in the event streams (listing, webhooks), and in
// its email's history while the email's record exists: an event may come
// long after the record expired (an unsubscribe link is valid for years),
// and must not leave a history nothing expires.
func (s *Store) RecordEvent(ctx context.Context, ev *Event) error {
	n, err := s.rdb.Exists(ctx, EmailKey(ev.EmailID)).Result()
	if err != nil {
		return err
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		if n == 0 {
			appendToStreams(ctx, p, ev, mustJSON(ev))
		} else {
			appendEvents(ctx, p, ev)
		}
		return nil
	})
	return err
}
