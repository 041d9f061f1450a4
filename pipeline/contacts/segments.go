package contacts

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// Segment selects contacts of an account by a Filter.
type Segment struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Filter    Filter    `json:"filter"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// Filter is what a contact must satisfy to be in a segment: every one of
// Tags, Status when not "", and every condition of Fields.
type Filter struct {
	Tags   []string    `json:"tags,omitempty"`
	Status Status      `json:"status,omitempty"`
	Fields []Condition `json:"fields,omitempty"`
}

// Condition compares one field of a contact with a value, ignoring case.
// Field is "email", "first_name", "last_name", "company" or the name of
// a custom field (absent counts as "").
type Condition struct {
	Field string `json:"field"`
	Op    Op     `json:"op"`
	Value string `json:"value"`
}

// Op is how a Condition compares.
type Op string

// The comparisons.
const (
	OpEquals   Op = "equals"
	OpContains Op = "contains"
)

// Limits of a segment.
const (
	MaxSegmentName  = 128
	MaxFilterTags   = 20
	MaxConditions   = 20
	MaxConditionLen = 1024 // bytes of a condition's value
	segmentPrefix   = "seg"
	// EachChunk is the most contacts EachInSegment hands over at once.
	EachChunk = 500
)

// checkFilter validates f strictly, naming the bad part.
func checkFilter(f *Filter) error {
	if len(f.Tags) > MaxFilterTags {
		return pipeline.ErrInvalid.Withf("filter.tags: at most %d tags (got %d)", MaxFilterTags, len(f.Tags))
	}
	for i, t := range f.Tags {
		field := fmt.Sprintf("filter.tags[%d]", i)
		if strings.TrimSpace(t) == "" {
			return pipeline.ErrInvalid.With(field + ": must not be empty")
		}
		if err := checkTag(field, t); err != nil {
			return err
		}
	}
	if f.Status != "" {
		if err := checkStatus("filter.status", f.Status); err != nil {
			return err
		}
	}
	if len(f.Fields) > MaxConditions {
		return pipeline.ErrInvalid.Withf("filter.fields: at most %d conditions (got %d)", MaxConditions, len(f.Fields))
	}
	for i, c := range f.Fields {
		at := fmt.Sprintf("filter.fields[%d]", i)
		if c.Field == "" {
			return pipeline.ErrInvalid.With(at + ".field: is required: email, first_name, last_name, company or a custom field's name")
		}
		if err := checkFieldName(at+".field", c.Field); err != nil {
			return err
		}
		if c.Op != OpEquals && c.Op != OpContains {
			return pipeline.ErrInvalid.With(at + ".op: must be equals or contains (got " + pipeline.Quote(string(c.Op)) + ")")
		}
		if len(c.Value) > MaxConditionLen {
			return pipeline.ErrInvalid.Withf("%s.value: must be at most %d bytes", at, MaxConditionLen)
		}
		if c.Op == OpContains && c.Value == "" {
			return pipeline.ErrInvalid.With(at + ".value: contains needs a value")
		}
		if err := pipeline.CheckPrintable(at+".value", c.Value); err != nil {
			return err
		}
	}
	return nil
}

// Match reports whether the contact is in a segment with this filter.
func (f *Filter) Match(c *Contact) bool {
	if f.Status != "" && c.Status != f.Status {
		return false
	}
	for _, t := range f.Tags {
		if !hasTag(c, t) {
			return false
		}
	}
	for _, cond := range f.Fields {
		v := fieldValue(c, cond.Field)
		switch cond.Op {
		case OpEquals:
			if !strings.EqualFold(v, cond.Value) {
				return false
			}
		case OpContains:
			if !strings.Contains(strings.ToLower(v), strings.ToLower(cond.Value)) {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// fieldValue is a condition's field of c: a standard one by its token name,
// else a custom field.
func fieldValue(c *Contact, field string) string {
	switch field {
	case TokenEmail:
		return c.Email
	case TokenFirstName:
		return c.FirstName
	case TokenLastName:
		return c.LastName
	case TokenCompany:
		return c.Company
	}
	return c.Fields[field]
}

// SegmentFields are the editable fields of a segment; nil is "not given".
type SegmentFields struct {
	Name   *string
	Filter *Filter
}

func checkSegment(sg *Segment) error {
	if strings.TrimSpace(sg.Name) == "" {
		return pipeline.ErrInvalid.With("name: a segment name is required")
	}
	if utf8.RuneCountInString(sg.Name) > MaxSegmentName {
		return pipeline.ErrInvalid.Withf("name: must be at most %d characters", MaxSegmentName)
	}
	if err := pipeline.CheckPrintable("name", sg.Name); err != nil {
		return err
	}
	return checkFilter(&sg.Filter)
}

func (f SegmentFields) apply(sg *Segment) {
	if f.Name != nil {
		sg.Name = *f.Name
	}
	if f.Filter != nil {
		sg.Filter = *f.Filter
	}
}

func (s *Service) putSegment(ctx context.Context, accountID string, sg *Segment) error {
	b, err := json.Marshal(sg)
	if err != nil {
		return err
	}
	if err := s.store.PutSegment(ctx, accountID, sg.ID, b); err != nil {
		return pipeline.StorageError(err)
	}
	return nil
}

// CreateSegment validates and stores a new segment.
func (s *Service) CreateSegment(ctx context.Context, k *store.Key, f SegmentFields) (*Segment, error) {
	if err := pipeline.RequirePermission(k, store.PermissionFull); err != nil {
		return nil, err
	}
	now := s.opt.Now().UTC()
	sg := &Segment{ID: store.NewID(segmentPrefix), CreatedAt: now, UpdatedAt: now}
	f.apply(sg)
	if err := checkSegment(sg); err != nil {
		return nil, err
	}
	return sg, s.putSegment(ctx, k.AccountID, sg)
}

// Segment returns one of the account's segments.
func (s *Service) Segment(ctx context.Context, k *store.Key, id string) (*Segment, error) {
	if err := pipeline.RequirePermission(k, store.PermissionFull); err != nil {
		return nil, err
	}
	return s.segment(ctx, k.AccountID, id)
}

func (s *Service) segment(ctx context.Context, accountID, id string) (*Segment, error) {
	b, err := s.store.Segment(ctx, accountID, id)
	if err != nil {
		return nil, storageError(err, "segment")
	}
	var sg Segment
	if err := json.Unmarshal(b, &sg); err != nil {
		return nil, pipeline.StorageError(fmt.Errorf("decode segment %s: %w", id, err))
	}
	return &sg, nil
}

// UpdateSegment changes the given fields of a segment (PATCH).
func (s *Service) UpdateSegment(ctx context.Context, k *store.Key, id string, f SegmentFields) (*Segment, error) {
	sg, err := s.Segment(ctx, k, id)
	if err != nil {
		return nil, err
	}
	f.apply(sg)
	sg.UpdatedAt = s.opt.Now().UTC()
	if err := checkSegment(sg); err != nil {
		return nil, err
	}
	return sg, s.putSegment(ctx, k.AccountID, sg)
}

// DeleteSegment removes a segment; its contacts stay.
func (s *Service) DeleteSegment(ctx context.Context, k *store.Key, id string) error {
	if err := pipeline.RequirePermission(k, store.PermissionFull); err != nil {
		return err
	}
	if err := s.store.DeleteSegment(ctx, k.AccountID, id); err != nil {
		return storageError(err, "segment")
	}
	return nil
}

// Segments lists the account's segments, newest first, limit a page (1–100,
// default 20) after the cursor; next is "" on the last page.
func (s *Service) Segments(ctx context.Context, k *store.Key, cursor string, limit int) ([]*Segment, string, error) {
	if err := pipeline.RequirePermission(k, store.PermissionFull); err != nil {
		return nil, "", err
	}
	if limit == 0 {
		limit = defaultLimit
	}
	if limit < 1 || limit > maxLimit {
		return nil, "", pipeline.ErrInvalid.With("limit: must be between 1 and 100")
	}
	var after int64
	if cursor != "" {
		n, err := strconv.ParseInt(cursor, 10, 64)
		if err != nil || n < 1 {
			return nil, "", pipeline.ErrInvalid.With("cursor: " + pipeline.Quote(cursor) + " is not a valid cursor")
		}
		after = n
	}
	raws, next, err := s.store.ListSegments(ctx, k.AccountID, after, limit)
	if err != nil {
		return nil, "", pipeline.StorageError(err)
	}
	out := make([]*Segment, 0, len(raws))
	for _, b := range raws {
		var sg Segment
		if json.Unmarshal(b, &sg) == nil {
			out = append(out, &sg)
		}
	}
	if next == 0 {
		return out, "", nil
	}
	return out, strconv.FormatInt(next, 10), nil
}

// CountSegment counts the contacts in the segment now, whatever their
// status unless the filter names one. It reads every contact of the account.
func (s *Service) CountSegment(ctx context.Context, k *store.Key, sg *Segment) (int, error) {
	if err := pipeline.RequirePermission(k, store.PermissionFull); err != nil {
		return 0, err
	}
	n := 0
	err := s.scan(ctx, k.AccountID, func(c *Contact) error {
		if sg.Filter.Match(c) {
			n++
		}
		return nil
	})
	return n, err
}

// scan calls fn with each of the account's contacts in creation order,
// reading EachChunk per round trip.
func (s *Service) scan(ctx context.Context, accountID string, fn func(*Contact) error) error {
	var after int64
	for {
		ids, seqs, err := s.store.ContactIndex(ctx, accountID, after, false, EachChunk)
		if err != nil {
			return pipeline.StorageError(err)
		}
		hs, err := s.store.Contacts(ctx, accountID, ids)
		if err != nil {
			return pipeline.StorageError(err)
		}
		for _, h := range hs {
			if c := fromHash(h); c != nil {
				if err := fn(c); err != nil {
					return err
				}
			}
		}
		if len(ids) < EachChunk {
			return nil
		}
		after = seqs[len(seqs)-1]
	}
}

// EachInSegment calls fn with the subscribed contacts of the segment, in
// chunks of at most EachChunk (500), in creation order; it returns
// pipeline.NotFound("segment") if the segment is unknown, and fn's error,
// which stops it. A contact created during the walk may or may not be seen.
func (s *Service) EachInSegment(ctx context.Context, accountID, segmentID string, fn func([]*Contact) error) error {
	sg, err := s.segment(ctx, accountID, segmentID)
	if err != nil {
		return err
	}
	batch := make([]*Contact, 0, EachChunk)
	err = s.scan(ctx, accountID, func(c *Contact) error {
		if c.Status != Subscribed || !sg.Filter.Match(c) {
			return nil
		}
		batch = append(batch, c)
		if len(batch) < EachChunk {
			return nil
		}
		err := fn(batch)
		batch = make([]*Contact, 0, EachChunk)
		return err
	})
	if err != nil || len(batch) == 0 {
		return err
	}
	return fn(batch)
}
