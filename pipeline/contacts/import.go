package contacts

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/pigeonpost/pigeonpost/internal/strictjson"
	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// Import: many contacts in one request, read as a stream (a CSV row or a
// JSON contact at a time, never the whole body) and written ImportChunk
// rows per round trip (one script). Each row creates the contact of its
// address or updates it: a given value replaces the stored one, an empty
// CSV cell or an absent JSON field leaves it as it is; a new contact is
// subscribed unless the row says otherwise. A bad row fails alone and is
// reported by its number (1 for the first contact; a CSV header is not
// counted).

// Format is the encoding of an import.
type Format int

// The import formats.
const (
	// CSV has a header row: email, first_name (or firstName), last_name (or
	// lastName), company, status, tags (separated by ";" or "|"); any other
	// column is a custom field of that name. Only email is required.
	CSV Format = iota
	// JSON is an array of contact objects, or {"contacts": [...]}; each as
	// the API shows a contact (email, firstName, lastName, company, status,
	// tags, fields).
	JSON
)

// ImportChunk is how many rows go to Redis at once.
const ImportChunk = 1000

// MaxImportErrors is how many row errors an ImportResult lists.
const MaxImportErrors = 100

// ImportResult counts what an import did.
type ImportResult struct {
	Created int
	Updated int
	Failed  int
	Errors  []RowError // the first MaxImportErrors
}

// RowError says why a row failed.
type RowError struct {
	Row     int
	Message string
}

// ReadError is a failure to read the import's source (not a bad row): the
// rows before it were imported.
type ReadError struct{ Err error }

func (e *ReadError) Error() string { return "contacts: reading the import: " + e.Err.Error() }

func (e *ReadError) Unwrap() error { return e.Err }

// Import reads contacts from r in format and creates or updates each. The
// rows read before a failure to read r (a *ReadError) or a body that stops
// being valid CSV/JSON (pipeline.ErrInvalid naming the row) are imported.
func (s *Service) Import(ctx context.Context, k *store.Key, format Format, r io.Reader) (*ImportResult, error) {
	if err := pipeline.RequirePermission(k, store.PermissionFull); err != nil {
		return nil, err
	}
	im := &importer{s: s, ctx: ctx, accountID: k.AccountID, res: &ImportResult{Errors: []RowError{}}}
	var err error
	switch format {
	case CSV:
		err = im.readCSV(r)
	case JSON:
		err = im.readJSON(r)
	default:
		return nil, pipeline.ErrInvalid.With("the import format is unknown")
	}
	if ferr := im.flush(); ferr != nil && err == nil {
		err = ferr
	}
	return im.res, err
}

type importer struct {
	s         *Service
	ctx       context.Context
	accountID string
	res       *ImportResult
	rows      []importRow
	rowsRead  int
}

// importRow is one valid row waiting for its chunk to be written.
type importRow struct {
	row    int
	ek     string
	set    []string // the fields given
	defs   []string // what a new contact gets besides
	lastID string   // the id its address mapped to when last looked
}

func (im *importer) fail(row int, err error) {
	im.res.Failed++
	if len(im.res.Errors) < MaxImportErrors {
		im.res.Errors = append(im.res.Errors, RowError{Row: row, Message: pipeline.AsError(err).Message})
	}
}

// add validates a row's fields and queues it, writing a full chunk.
func (im *importer) add(row int, f Fields) error {
	im.rowsRead = row
	if f.Email == nil || strings.TrimSpace(*f.Email) == "" {
		im.fail(row, pipeline.ErrInvalid.With("email: a contact's address is required"))
		return nil
	}
	email := strings.TrimSpace(*f.Email)
	f.Email = &email
	c := &Contact{Status: Subscribed, Tags: []string{}}
	set, _ := f.apply(c)
	if err := check(c); err != nil {
		im.fail(row, err)
		return nil
	}
	var defs []string
	if f.Status == nil {
		defs = append(defs, hStatus, string(Subscribed))
	}
	if f.Tags == nil {
		defs = append(defs, hTags, emptyTags)
	}
	im.rows = append(im.rows, importRow{row: row, ek: emailKey(c.Email), set: set, defs: defs})
	if len(im.rows) >= ImportChunk {
		return im.flush()
	}
	return nil
}

// flush writes the queued rows: one read of their addresses, then one
// script per pass; a row whose address changed hands in between goes
// again, as an update or a creation.
func (im *importer) flush() error {
	if len(im.rows) == 0 {
		return nil
	}
	pending := im.rows
	im.rows = im.rows[:0:0]
	eks := make([]string, len(pending))
	for i, r := range pending {
		eks[i] = r.ek
	}
	ids, err := im.s.store.ContactIDsByEmail(im.ctx, im.accountID, eks)
	if err != nil {
		return pipeline.StorageError(err)
	}
	for i := range pending {
		pending[i].lastID = ids[i]
	}
	for pass := 0; len(pending) > 0; pass++ {
		if pass == maxUpsertPasses {
			for _, r := range pending {
				im.fail(r.row, pipeline.ErrConflict.With("the contact changed during the import; import the row again"))
			}
			return nil
		}
		ups := make([]store.ContactUpsert, len(pending))
		for i, r := range pending {
			if r.lastID != "" {
				ups[i] = store.ContactUpsert{ID: r.lastID, EmailKey: r.ek, Set: r.set}
				continue
			}
			set := make([]string, 0, len(r.set)+len(r.defs))
			set = append(append(set, r.defs...), r.set...)
			ups[i] = store.ContactUpsert{ID: store.NewID(contactIDPrefix), EmailKey: r.ek, New: true, Set: set}
		}
		res, err := im.s.store.UpsertContacts(im.ctx, im.accountID, im.s.now(), ups)
		if err != nil {
			return pipeline.StorageError(err)
		}
		var retry []importRow
		for i, out := range res {
			switch out {
			case store.UpsertCreated:
				im.res.Created++
			case store.UpsertUpdated:
				im.res.Updated++
			default:
				r := pending[i]
				r.lastID = out
				retry = append(retry, r)
			}
		}
		pending = retry
	}
	return nil
}

// ---- CSV ----

// csvColumns maps the standard column names (lower-cased) to their field.
var csvColumns = map[string]string{
	"email": hEmail, "first_name": hFirstName, "firstname": hFirstName, "last_name": hLastName, "lastname": hLastName,
	"company": hCompany, "status": hStatus, "tags": hTags,
}

func (im *importer) readCSV(r io.Reader) error {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return pipeline.ErrInvalid.With("body: the CSV has no header row")
	}
	if err != nil {
		return csvError(err, "the header row")
	}
	cols := make([]string, len(header)) // the field of each column; "f:name" for a custom one
	seen := map[string]bool{}
	for i, h := range header {
		name := strings.TrimSpace(h)
		if i == 0 {
			name = strings.TrimPrefix(name, "\ufeff") // a byte order mark
		}
		field, ok := csvColumns[strings.ToLower(name)]
		if !ok {
			if err := checkFieldName(fmt.Sprintf("header column %d", i+1), name); err != nil {
				return err
			}
			field = hField + name
		}
		if seen[field] {
			return pipeline.ErrInvalid.With(fmt.Sprintf("header column %d: %s is there twice", i+1, pipeline.Quote(name)))
		}
		seen[field], cols[i] = true, field
	}
	if !seen[hEmail] {
		return pipeline.ErrInvalid.With("header: an email column is required")
	}
	for row := 1; ; row++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			im.fail(row, pipeline.ErrInvalid.With("not valid CSV: "+pe.Err.Error()))
			continue
		}
		if err != nil {
			return &ReadError{Err: err}
		}
		if len(rec) != len(cols) {
			im.fail(row, pipeline.ErrInvalid.Withf("the row has %d cells, the header %d", len(rec), len(cols)))
			continue
		}
		if err := im.add(row, csvFields(cols, rec)); err != nil {
			return err
		}
	}
}

// csvFields are the non-empty cells of a row.
func csvFields(cols, rec []string) Fields {
	var f Fields
	for i, v := range rec {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		switch cols[i] {
		case hEmail:
			f.Email = &v
		case hFirstName:
			f.FirstName = &v
		case hLastName:
			f.LastName = &v
		case hCompany:
			f.Company = &v
		case hStatus:
			st := Status(strings.ToLower(v))
			f.Status = &st
		case hTags:
			tags := strings.FieldsFunc(v, func(r rune) bool { return r == ';' || r == '|' })
			f.Tags = &tags
		default:
			if f.Fields == nil {
				f.Fields = map[string]*string{}
			}
			f.Fields[strings.TrimPrefix(cols[i], hField)] = &v
		}
	}
	return f
}

func csvError(err error, where string) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return pipeline.ErrInvalid.With(where + ": not valid CSV: " + pe.Err.Error())
	}
	return &ReadError{Err: err}
}

// ---- JSON ----

// jsonContact is a contact of a JSON import.
// jsonImport is the object form of a JSON import, for naming what is not
// in it.
type jsonImport struct {
	Contacts []jsonContact `json:"contacts"`
}

type jsonContact struct {
	Email     *string            `json:"email"`
	FirstName *string            `json:"firstName"`
	LastName  *string            `json:"lastName"`
	Company   *string            `json:"company"`
	Status    *Status            `json:"status"`
	Tags      *[]string          `json:"tags"`
	Fields    map[string]*string `json:"fields"`
}

func (im *importer) readJSON(r io.Reader) error {
	dec := json.NewDecoder(r)
	dec.UseNumber() // a token such as 1E700 is a number, not a float64 that overflows
	tok, err := dec.Token()
	if err != nil {
		return im.jsonError(err, "body")
	}
	switch tok {
	case json.Delim('['):
		return im.readJSONArray(dec)
	case json.Delim('{'):
	default:
		return pipeline.ErrInvalid.With(`body: must be an array of contacts or {"contacts": [...]}`)
	}
	found := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return im.jsonError(err, "body")
		}
		switch key, _ := tok.(string); {
		case key != "contacts":
			return pipeline.ErrUnknownField.With(strictjson.Message([]byte(`{`+strconv.Quote(key)+`:0}`), &jsonImport{}, ""))
		case found:
			return pipeline.ErrInvalid.With("contacts: given twice")
		}
		found = true
		tok, err = dec.Token()
		if err != nil {
			return im.jsonError(err, "contacts")
		}
		if tok != json.Delim('[') {
			return pipeline.ErrInvalid.With("contacts: must be an array")
		}
		if err := im.readJSONArray(dec); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return im.jsonError(err, "body")
	}
	if !found {
		return pipeline.ErrInvalid.With("contacts: is required: an array of contacts")
	}
	return nil
}

// readJSONArray reads the contacts of an array whose '[' has been read,
// one at a time, and its ']'.
func (im *importer) readJSONArray(dec *json.Decoder) error {
	for row := 1; dec.More(); row++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return im.jsonError(err, fmt.Sprintf("contacts[%d]", row-1))
		}
		var c jsonContact
		strict := json.NewDecoder(bytes.NewReader(raw))
		strict.DisallowUnknownFields()
		err := strict.Decode(&c)
		if strictjson.IsUnknownField(err) {
			im.fail(row, pipeline.ErrUnknownField.With(strictjson.Message(raw, &c, fmt.Sprintf("contacts[%d].", row-1))))
			im.rowsRead = row
			continue
		}
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			// The decoder has read the whole value: go on with the next.
			field := "contacts[" + fmt.Sprint(row-1) + "]"
			if typeErr.Field != "" {
				field += "." + typeErr.Field
			}
			im.fail(row, pipeline.ErrInvalid.With(field+": must be "+jsonKind(typeErr.Type.Kind().String())))
			im.rowsRead = row
			continue
		}
		if err != nil {
			return im.jsonError(err, fmt.Sprintf("contacts[%d]", row-1))
		}
		if err := im.add(row, Fields(c)); err != nil {
			return err
		}
	}
	_, err := dec.Token() // ']'
	if err != nil {
		return im.jsonError(err, "contacts")
	}
	return nil
}

// jsonError is a decoding failure at where: the body stops being JSON, or
// reading it failed.
func (im *importer) jsonError(err error, where string) error {
	var syn *json.SyntaxError
	if errors.As(err, &syn) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		if im.rowsRead == 0 {
			return pipeline.ErrInvalid.With(where + ": the body is not valid JSON")
		}
		return pipeline.ErrInvalid.Withf("%s: the body is not valid JSON from here; the %d contacts before it were read and imported (or reported)", where, im.rowsRead)
	}
	return &ReadError{Err: err}
}

func jsonKind(kind string) string {
	switch kind {
	case "slice", "array":
		return "an array"
	case "map", "struct", "ptr":
		return "an object"
	case "bool":
		return "a boolean"
	case "string":
		return "a string"
	}
	return "a number"
}
