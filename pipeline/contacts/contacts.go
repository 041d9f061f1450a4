// Package contacts owns an account's contacts and segments: the contact
// records (one per address, case-insensitively), their statuses, the
// streamed import of many at once, the segments that select contacts by
// tags, status and fields, and the resolution of send recipients (an
// address or a contact id) into contacts, created on first use.
package contacts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// Status is a contact's standing: whether mail may go to it.
type Status string

// The contact statuses.
const (
	Subscribed   Status = "subscribed"
	Unsubscribed Status = "unsubscribed"
	Bounced      Status = "bounced"
	Complained   Status = "complained"
)

// Statuses are every contact status.
var Statuses = []Status{Subscribed, Unsubscribed, Bounced, Complained}

// MarshalBinary lets go-redis write a Status as a string.
func (s Status) MarshalBinary() ([]byte, error) { return []byte(s), nil }

// Valid reports whether s is one of Statuses.
func (s Status) Valid() bool {
	switch s {
	case Subscribed, Unsubscribed, Bounced, Complained:
		return true
	}
	return false
}

func checkStatus(field string, s Status) error {
	if !s.Valid() {
		return pipeline.ErrInvalid.With(field + ": must be one of subscribed, unsubscribed, bounced, complained (got " + pipeline.Quote(string(s)) + ")")
	}
	return nil
}

// Contact is one contact of an account.
type Contact struct {
	ID        string
	Email     string // as given; unique in the account case-insensitively
	FirstName string
	LastName  string
	Company   string
	Status    Status
	Tags      []string
	Fields    map[string]string // custom fields
	CreatedAt time.Time
	UpdatedAt time.Time
	seq       int64 // creation order
}

// The standard tokens of a contact, in Tokens.
const (
	TokenFirstName = "first_name"
	TokenLastName  = "last_name"
	TokenEmail     = "email"
	TokenCompany   = "company"
)

// Tokens are the template values a contact fills: first_name, last_name,
// email, company, then each custom field by its name (a custom field never
// overrides the four standard ones). A token whose value is empty is left
// out, so that a template's default ({{first_name | default: "there"}})
// applies.
func (c *Contact) Tokens() map[string]string {
	out := make(map[string]string, 4+len(c.Fields))
	for name, v := range c.Fields {
		if v != "" {
			out[name] = v
		}
	}
	for name, v := range map[string]string{TokenFirstName: c.FirstName, TokenLastName: c.LastName,
		TokenEmail: c.Email, TokenCompany: c.Company} {
		delete(out, name)
		if v != "" {
			out[name] = v
		}
	}
	return out
}

// Options configure the Service.
type Options struct {
	Now func() time.Time
}

// Service keeps contacts and segments. It is safe for concurrent use.
type Service struct {
	opt   Options
	store *store.Store
}

// New returns the Service over st.
func New(st *store.Store, opt Options) *Service {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return &Service{opt: opt, store: st}
}

func (s *Service) now() string { return store.FormatTime(s.opt.Now()) }

// Limits of a contact.
const (
	MaxNameLength   = 256 // first name, last name, company (characters)
	MaxTags         = 50
	MaxTagLength    = 64
	MaxFields       = 50
	MaxFieldName    = 64
	MaxFieldValue   = 1024 // bytes
	contactIDPrefix = "ct"
)

// fieldName is what a custom field may be called: a template variable name.
var fieldName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)

// The hash fields of a contact (store.ContactKey) besides store's own.
const (
	hEmail     = "email"
	hFirstName = "firstName"
	hLastName  = "lastName"
	hCompany   = "company"
	hStatus    = store.ContactFieldStatus
	hTags      = "tags" // JSON array
	hField     = "f:"   // + the name of a custom field
	emptyTags  = "[]"
)

const (
	idPrefix   = "ct_" // contact ids
	maxIDBytes = 64    // longer is no id of ours
	tagSeps    = ";|"  // separate tags in a CSV cell
)

// fromHash is the contact a stored hash holds; nil for an empty hash.
func fromHash(h map[string]string) *Contact {
	if len(h) == 0 || h[store.ContactFieldID] == "" {
		return nil
	}
	c := &Contact{ID: h[store.ContactFieldID], Email: h[hEmail], FirstName: h[hFirstName], LastName: h[hLastName],
		Company: h[hCompany], Status: Status(h[hStatus]), Tags: []string{}, Fields: map[string]string{}}
	if c.Status == "" {
		c.Status = Subscribed
	}
	if t := h[hTags]; t != "" {
		_ = json.Unmarshal([]byte(t), &c.Tags)
	}
	for k, v := range h {
		if name, ok := strings.CutPrefix(k, hField); ok {
			c.Fields[name] = v
		}
	}
	c.CreatedAt, _ = time.Parse(time.RFC3339Nano, h[store.ContactFieldCreatedAt])
	c.UpdatedAt, _ = time.Parse(time.RFC3339Nano, h[store.ContactFieldUpdatedAt])
	c.seq, _ = strconv.ParseInt(h[store.ContactFieldSeq], 10, 64)
	return c
}

// Fields are the editable fields of a contact: nil is "not given". Tags,
// when given, replace the contact's; Fields are merged into its custom
// fields, a nil value removing one.
type Fields struct {
	Email     *string
	FirstName *string
	LastName  *string
	Company   *string
	Status    *Status
	Tags      *[]string
	Fields    map[string]*string
}

// apply sets f on c and returns the hash fields to write and to delete.
func (f Fields) apply(c *Contact) (set, del []string) {
	for _, p := range []struct {
		dst  *string
		src  *string
		hash string
	}{{&c.Email, f.Email, hEmail}, {&c.FirstName, f.FirstName, hFirstName}, {&c.LastName, f.LastName, hLastName}, {&c.Company, f.Company, hCompany}} {
		if p.src != nil {
			*p.dst = *p.src
			set = append(set, p.hash, *p.src)
		}
	}
	if f.Status != nil {
		c.Status = *f.Status
		set = append(set, hStatus, string(c.Status))
	}
	if f.Tags != nil {
		c.Tags = normaliseTags(*f.Tags)
		set = append(set, hTags, tagsJSON(c.Tags))
	}
	if c.Fields == nil {
		c.Fields = map[string]string{}
	}
	names := make([]string, 0, len(f.Fields))
	for name := range f.Fields {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if v := f.Fields[name]; v != nil {
			c.Fields[name] = *v
			set = append(set, hField+name, *v)
		} else {
			delete(c.Fields, name)
			del = append(del, hField+name)
		}
	}
	return set, del
}

// normaliseTags trims the tags and drops empty ones and repeats.
func normaliseTags(tags []string) []string {
	out := make([]string, 0, len(tags))
	seen := map[string]bool{}
	for _, t := range tags {
		t = strings.TrimSpace(t)
		if t == "" || seen[t] {
			continue
		}
		seen[t] = true
		out = append(out, t)
	}
	return out
}

func tagsJSON(tags []string) string {
	if len(tags) == 0 {
		return emptyTags
	}
	b, _ := json.Marshal(tags)
	return string(b)
}

// check validates a contact as it is to be stored; prefix goes before the
// field names in errors ("" or "contacts[3].").
func check(c *Contact) error {
	email, err := pipeline.ParseAddress(c.Email)
	if err != nil {
		return pipeline.ErrBadAddress.With("email: " + pipeline.AsError(err).Message)
	}
	c.Email = email
	for _, p := range []struct{ field, v string }{{"firstName", c.FirstName}, {"lastName", c.LastName}, {"company", c.Company}} {
		if utf8.RuneCountInString(p.v) > MaxNameLength {
			return pipeline.ErrInvalid.Withf("%s: must be at most %d characters", p.field, MaxNameLength)
		}
		if err := pipeline.CheckPrintable(p.field, p.v); err != nil {
			return err
		}
	}
	if err := checkStatus("status", c.Status); err != nil {
		return err
	}
	if len(c.Tags) > MaxTags {
		return pipeline.ErrInvalid.Withf("tags: at most %d tags (got %d)", MaxTags, len(c.Tags))
	}
	for i, t := range c.Tags {
		if err := checkTag(fmt.Sprintf("tags[%d]", i), t); err != nil {
			return err
		}
	}
	if len(c.Fields) > MaxFields {
		return pipeline.ErrInvalid.Withf("fields: at most %d custom fields (got %d)", MaxFields, len(c.Fields))
	}
	for name, v := range c.Fields {
		if err := checkFieldName("fields", name); err != nil {
			return err
		}
		if len(v) > MaxFieldValue {
			return pipeline.ErrInvalid.Withf("fields.%s: must be at most %d bytes", name, MaxFieldValue)
		}
		if err := pipeline.CheckPrintable("fields."+name, v); err != nil {
			return err
		}
	}
	return nil
}

func checkTag(field, t string) error {
	if utf8.RuneCountInString(t) > MaxTagLength {
		return pipeline.ErrInvalid.Withf("%s: must be at most %d characters", field, MaxTagLength)
	}
	if strings.ContainsAny(t, tagSeps) {
		return pipeline.ErrInvalid.With(field + `: must not contain ";" or "|" (they separate tags in a CSV import)`)
	}
	return pipeline.CheckPrintable(field, t)
}

func checkFieldName(field, name string) error {
	if len(name) > MaxFieldName || !fieldName.MatchString(name) {
		return pipeline.ErrInvalid.With(field + ": " + pipeline.Quote(name) +
			" is not a field name: letters, digits, _ . - (not first), at most 64")
	}
	return nil
}

// emailKey is the form of an address the account's contacts are unique by.
func emailKey(email string) string { return strings.ToLower(email) }

// contactNotFound is the answer for an unknown contact.
func contactNotFound() error { return pipeline.NotFound("contact") }

// storageError is StorageError, with store.ErrNotFound as what.
func storageError(err error, what string) error {
	if errors.Is(err, store.ErrNotFound) {
		return pipeline.NotFound(what)
	}
	return pipeline.StorageError(err)
}

// ---- one contact (REST) ----

// Create validates and stores a new contact; its status is subscribed
// unless given. ErrConflict if the account has a contact with its address.
func (s *Service) Create(ctx context.Context, k *store.Key, f Fields) (*Contact, error) {
	if err := pipeline.RequirePermission(k, store.PermissionFull); err != nil {
		return nil, err
	}
	if f.Email == nil {
		return nil, pipeline.ErrInvalid.With("email: a contact's address is required")
	}
	c := &Contact{ID: store.NewID(contactIDPrefix), Status: Subscribed, Tags: []string{}}
	set, _ := f.apply(c)
	if err := check(c); err != nil {
		return nil, err
	}
	set = withDefaults(set, f, c)
	now := s.now()
	res, err := s.store.UpsertContacts(ctx, k.AccountID, now, []store.ContactUpsert{{ID: c.ID, EmailKey: emailKey(c.Email), New: true, Set: set}})
	if err != nil {
		return nil, pipeline.StorageError(err)
	}
	if res[0] != store.UpsertCreated {
		return nil, pipeline.ErrConflict.With("email: the account has a contact with this address: " + res[0])
	}
	c.CreatedAt, _ = time.Parse(time.RFC3339Nano, now)
	c.UpdatedAt = c.CreatedAt
	return c, nil
}

// withDefaults adds to set the fields a new contact gets when not given:
// its status, empty tags, and the address as checked.
func withDefaults(set []string, f Fields, c *Contact) []string {
	set = append(set, hEmail, c.Email)
	if f.Status == nil {
		set = append(set, hStatus, string(c.Status))
	}
	if f.Tags == nil {
		set = append(set, hTags, emptyTags)
	}
	return set
}

// Get returns one of the account's contacts.
func (s *Service) Get(ctx context.Context, k *store.Key, id string) (*Contact, error) {
	if err := pipeline.RequirePermission(k, store.PermissionFull); err != nil {
		return nil, err
	}
	return s.get(ctx, k.AccountID, id)
}

func (s *Service) get(ctx context.Context, accountID, id string) (*Contact, error) {
	if !strings.HasPrefix(id, idPrefix) || len(id) > maxIDBytes {
		return nil, contactNotFound()
	}
	hs, err := s.store.Contacts(ctx, accountID, []string{id})
	if err != nil {
		return nil, pipeline.StorageError(err)
	}
	c := fromHash(hs[0])
	if c == nil {
		return nil, contactNotFound()
	}
	return c, nil
}

// Update changes the given fields of a contact (PATCH) and validates the
// result. ErrConflict if a new address is another contact's.
func (s *Service) Update(ctx context.Context, k *store.Key, id string, f Fields) (*Contact, error) {
	c, err := s.Get(ctx, k, id)
	if err != nil {
		return nil, err
	}
	return s.update(ctx, k.AccountID, c, f)
}

func (s *Service) update(ctx context.Context, accountID string, c *Contact, f Fields) (*Contact, error) {
	oldKey := emailKey(c.Email)
	set, del := f.apply(c)
	if err := check(c); err != nil {
		return nil, err
	}
	newKey := ""
	if f.Email != nil {
		set = append(set, hEmail, c.Email) // as check left it
		if k := emailKey(c.Email); k != oldKey {
			newKey = k
		}
	}
	h, err := s.store.UpdateContact(ctx, accountID, c.ID, s.now(), newKey, del, set)
	switch {
	case errors.Is(err, store.ErrContactEmailTaken):
		return nil, pipeline.ErrConflict.With("email: the account has another contact with this address")
	case err != nil:
		return nil, storageError(err, "contact")
	}
	return fromHash(h), nil
}

// SetStatus changes a contact's status (an unsubscribe, a bounce, a
// complaint). It does not touch the account's suppression list.
func (s *Service) SetStatus(ctx context.Context, accountID, contactID string, status Status) (*Contact, error) {
	if err := checkStatus("status", status); err != nil {
		return nil, err
	}
	h, err := s.store.UpdateContact(ctx, accountID, contactID, s.now(), "", nil, []string{hStatus, string(status)})
	if err != nil {
		return nil, storageError(err, "contact")
	}
	return fromHash(h), nil
}

// Delete removes a contact.
func (s *Service) Delete(ctx context.Context, k *store.Key, id string) error {
	if err := pipeline.RequirePermission(k, store.PermissionFull); err != nil {
		return err
	}
	if !strings.HasPrefix(id, idPrefix) || len(id) > maxIDBytes {
		return contactNotFound()
	}
	if err := s.store.DeleteContact(ctx, k.AccountID, id); err != nil {
		return storageError(err, "contact")
	}
	return nil
}
