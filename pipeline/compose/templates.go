package compose

import (
	"context"
	"errors"
	"fmt"
	"html"
	"net/mail"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// Templates. Template authors are tenants, so they get no template
// language: only {{name}} placeholders, substituted in one pass (a value
// that contains "{{b}}" stays literal), with an optional default:
//
//	Hello {{ name | default: "there" }}
//
// Values are HTML-escaped in the html part (and, inside a tag, URLs with
// script schemes are neutralised), literal in the text part, and must not
// contain line breaks or control characters in the subject. A placeholder
// without a value or default is a 400 naming the variable. A "{{" without
// its "}}", or a placeholder that is not a name, is refused when the
// template is saved, with its line and column. "}}" alone is plain text (CSS).

// Limits of a template.
const (
	MaxTemplateName    = 128
	MaxTemplateSubject = 998
	MaxTemplateBody    = 1 << 20
	maxVariableName    = 64
	maxVariables       = 1000
	maxVariableValue   = 64 << 10
)

var variableName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)

// tplNode is literal text or a placeholder.
type tplNode struct {
	literal string
	name    string  // placeholder when not ""
	def     *string // default value
	inTag   bool    // html: the placeholder is inside a tag (an attribute)
}

// parseTemplate splits src into literal text and placeholders. field names
// the template field in errors ("html", "subject" ...).
func parseTemplate(field, src string) ([]tplNode, error) {
	var nodes []tplNode
	// The tag state carries over placeholders: a '>' inside a quoted
	// attribute value does not end the tag, and a '<' right before a
	// placeholder puts the value where a tag name would be; a value escaped
	// as text there could add attributes.
	inTag, afterEq := false, false
	var quote byte // the quote of the attribute value being read, 0 if none
	trackTags := func(lit string) {
		for i := 0; i < len(lit); i++ {
			c := lit[i]
			if quote != 0 {
				if c == quote {
					quote = 0
				}
				continue
			}
			switch c {
			case '<':
				if i+1 == len(lit) || isLetter(lit[i+1]) || lit[i+1] == '/' || lit[i+1] == '!' {
					inTag = true
				}
			case '>':
				inTag, afterEq = false, false
			case '=':
				afterEq = inTag
			case '"', '\'':
				if afterEq {
					quote = c
				}
				afterEq = false
			case ' ', '\t', '\n', '\r', '\f':
			default:
				afterEq = false
			}
		}
	}
	rest, offset := src, 0
	for {
		open := strings.Index(rest, "{{")
		if open < 0 {
			if rest != "" {
				nodes = append(nodes, tplNode{literal: rest})
			}
			return nodes, nil
		}
		if open > 0 {
			nodes = append(nodes, tplNode{literal: rest[:open]})
			trackTags(rest[:open])
		}
		closeAt := strings.Index(rest[open+2:], "}}")
		if closeAt < 0 {
			return nil, pipeline.ErrInvalid.With(fmt.Sprintf("%s: unclosed {{ at %s", field, position(src, offset+open)))
		}
		inner := rest[open+2 : open+2+closeAt]
		n, ok := parsePlaceholder(inner)
		if !ok {
			return nil, pipeline.ErrInvalid.With(fmt.Sprintf("%s: invalid placeholder {{%s}} at %s; write {{name}} or {{name | default: \"text\"}}",
				field, shorten(inner, 40), position(src, offset+open)))

		}
		n.inTag = inTag
		nodes = append(nodes, n)
		consumed := open + 2 + closeAt + 2
		rest, offset = rest[consumed:], offset+consumed
	}
}

func isLetter(b byte) bool { return (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') }

// parsePlaceholder reads "name" or "name | default: "value"" (single or double quotes).
func parsePlaceholder(inner string) (tplNode, bool) {
	name, filter, hasFilter := strings.Cut(inner, "|")
	name = strings.TrimSpace(name)
	if len(name) > maxVariableName || !variableName.MatchString(name) {
		return tplNode{}, false
	}
	n := tplNode{name: name}
	if !hasFilter {
		return n, true
	}
	f := strings.TrimSpace(filter)
	f, ok := strings.CutPrefix(f, "default")
	if !ok {
		return tplNode{}, false
	}
	f, ok = strings.CutPrefix(strings.TrimSpace(f), ":")
	if !ok {
		return tplNode{}, false
	}
	f = strings.TrimSpace(f)
	if len(f) < 2 || (f[0] != '"' && f[0] != '\'') || f[len(f)-1] != f[0] || strings.ContainsRune(f[1:len(f)-1], rune(f[0])) {
		return tplNode{}, false
	}
	def := f[1 : len(f)-1]
	n.def = &def
	return n, true
}

// position gives "line L, column C" (1-based, columns in characters) of a byte offset.
func position(src string, offset int) string {
	before := src[:offset]
	line := strings.Count(before, "\n") + 1
	col := utf8.RuneCountInString(before[strings.LastIndexByte(before, '\n')+1:]) + 1
	return fmt.Sprintf("line %d, column %d", line, col)
}

func shorten(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n]) + "…"
}

// Rendering contexts.
const (
	renderText = iota
	renderHTML
	renderSubject
)

// renderTemplate substitutes vars into nodes. Missing variables are
// collected into missing rather than failing at the first.
func renderTemplate(nodes []tplNode, vars map[string]string, mode int, field string, missing map[string]bool) (string, error) {
	var b strings.Builder
	for _, n := range nodes {
		if n.name == "" {
			b.WriteString(n.literal)
			continue
		}
		v, ok := vars[n.name]
		if !ok {
			if n.def == nil {
				missing[n.name] = true
				continue
			}
			v = *n.def
		}
		switch mode {
		case renderHTML:
			b.WriteString(escapeHTMLValue(v, n.inTag))
		case renderSubject:
			if err := pipeline.CheckPrintable(field+"."+n.name+" (used in the subject)", v); err != nil {
				return "", err
			}
			b.WriteString(v)
		default:
			b.WriteString(v)
		}
	}
	return b.String(), nil
}

// escapeHTMLValue escapes a value for HTML text or a quoted attribute; inside
// a tag it also escapes what could end an unquoted attribute or, as '/',
// make the tag self-closing where a name is read (`<a{{v}}>` with "/"; the
// tag state tracked here is a guess, so wherever the value lands in the
// tag), and replaces a URL with a script scheme by a harmless one (as
// html/template does). In an attribute value the parser decodes it all back.
func escapeHTMLValue(v string, inTag bool) string {
	if !inTag {
		return html.EscapeString(v)
	}
	scheme := strings.ToLower(strings.Map(func(r rune) rune {
		if r <= ' ' {
			return -1
		}
		return r
	}, v))
	for _, bad := range []string{"javascript:", "vbscript:", "data:"} {
		if strings.HasPrefix(scheme, bad) {
			return "about:invalid#zTemplateUnsafe"
		}
	}
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;",
		" ", "&#32;", "\t", "&#9;", "\n", "&#10;", "\r", "&#13;", "\f", "&#12;", "=", "&#61;", "`", "&#96;", "/", "&#47;").Replace(v)
}

// parsedTemplate is a template checked and split into nodes.
type parsedTemplate struct {
	subject, html, text []tplNode
}

// TemplateFields are the editable fields of a template.
type TemplateFields struct {
	Name    *string
	Subject *string
	HTML    *string
	Text    *string
	From    *string
	ReplyTo *string
}

func checkTemplate(t *store.Template) (*parsedTemplate, error) {
	if strings.TrimSpace(t.Name) == "" {
		return nil, pipeline.ErrInvalid.With("name: a template name is required")
	}
	if utf8.RuneCountInString(t.Name) > MaxTemplateName {
		return nil, pipeline.ErrInvalid.With(fmt.Sprintf("name: must be at most %d characters", MaxTemplateName))
	}
	if err := pipeline.CheckPrintable("name", t.Name); err != nil {
		return nil, err
	}
	if len(t.Subject) > MaxTemplateSubject {
		return nil, pipeline.ErrInvalid.With(fmt.Sprintf("subject: must be at most %d bytes", MaxTemplateSubject))
	}
	if err := pipeline.CheckPrintable("subject", t.Subject); err != nil {
		return nil, err
	}
	if len(t.HTML) > MaxTemplateBody || len(t.Text) > MaxTemplateBody {
		return nil, pipeline.ErrInvalid.With(fmt.Sprintf("html, text: each must be at most %d bytes", MaxTemplateBody))
	}
	if t.HTML == "" && t.Text == "" {
		return nil, pipeline.ErrInvalid.With("html or text: a template body is required")
	}
	for _, f := range []struct{ name, value string }{{"from", t.From}, {"replyTo", t.ReplyTo}} {
		if f.value == "" {
			continue
		}
		if _, err := mail.ParseAddress(f.value); err != nil || pipeline.CheckPrintable(f.name, f.value) != nil {
			return nil, pipeline.ErrBadAddress.With(f.name + ": " + pipeline.Quote(f.value) + " is not a valid address")
		}
	}
	var p parsedTemplate
	var err error
	if p.subject, err = parseTemplate("subject", t.Subject); err != nil {
		return nil, err
	}
	if p.html, err = parseTemplate("html", t.HTML); err != nil {
		return nil, err
	}
	if p.text, err = parseTemplate("text", t.Text); err != nil {
		return nil, err
	}
	return &p, nil
}

// TemplateVariables lists the variable names a template uses, sorted.
func TemplateVariables(t *store.Template) []string {
	p, err := checkTemplate(t)
	if err != nil {
		return []string{}
	}
	seen := map[string]bool{}
	for _, nodes := range [][]tplNode{p.subject, p.html, p.text} {
		for _, n := range nodes {
			if n.name != "" {
				seen[n.name] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// renderedTemplate is a template with its variables substituted.
type renderedTemplate struct {
	Subject, HTML, Text string
}

func renderStoredTemplate(t *store.Template, vars map[string]string) (*renderedTemplate, error) {
	p, err := checkTemplate(t)
	if err != nil {
		return nil, pipeline.ErrInvalid.With("templateId: the template is not valid: " + pipeline.AsError(err).Message)
	}
	return p.render(nil, vars, "variables")
}

// render substitutes vars into p, with subject (when not nil) in place of
// the template's subject. field names the values in errors ("variables",
// "personalizations").
func (p *parsedTemplate) render(subject []tplNode, vars map[string]string, field string) (*renderedTemplate, error) {
	if len(vars) > maxVariables {
		return nil, pipeline.ErrInvalid.With(fmt.Sprintf("%s: at most %d values are allowed (got %d)", field, maxVariables, len(vars)))
	}
	for name, v := range vars {
		if len(v) > maxVariableValue {
			return nil, pipeline.ErrInvalid.With(fmt.Sprintf("%s.%s: must be at most %d bytes", field, shorten(name, 40), maxVariableValue))
		}
	}
	if subject == nil {
		subject = p.subject
	}
	missing := map[string]bool{}
	var r renderedTemplate
	var err error
	if r.Subject, err = renderTemplate(subject, vars, renderSubject, field, missing); err != nil {
		return nil, err
	}
	if r.HTML, err = renderTemplate(p.html, vars, renderHTML, field, missing); err != nil {
		return nil, err
	}
	if r.Text, err = renderTemplate(p.text, vars, renderText, field, missing); err != nil {
		return nil, err
	}
	if len(missing) > 0 {
		names := make([]string, 0, len(missing))
		for n := range missing {
			names = append(names, fmt.Sprintf("%q", n))
		}
		sort.Strings(names)
		return nil, pipeline.ErrInvalid.With(field + ": missing " + strings.Join(names, ", ") +
			" used by the template; pass it in " + field + ` or give a default: {{name | default: "text"}}`)
	}
	return &r, nil
}

// Template is a stored template parsed once, for sends that render it
// for many recipients.
type Template struct {
	*store.Template
	parsed  *parsedTemplate
	subject []tplNode // the send's own subject, when it gives one
}

// Rendered is a template with a recipient's values substituted.
type Rendered struct {
	Subject, HTML, Text string
}

// LoadTemplate returns the account's template id parsed for rendering.
// subject, when not "", replaces the template's subject and is a template
// too. An unknown id is a 400 naming it.
func (s *Service) LoadTemplate(ctx context.Context, k *store.Key, id, subject string) (*Template, error) {
	if err := pipeline.CheckPrintable("templateId", id); err != nil {
		return nil, err
	}
	t, err := s.template(ctx, k, id)
	if errors.Is(err, pipeline.ErrNotFound) {
		return nil, pipeline.ErrInvalid.With("templateId: no template " + pipeline.Quote(id) + " in this account")
	}
	if err != nil {
		return nil, err
	}
	p, err := checkTemplate(t)
	if err != nil {
		return nil, pipeline.ErrInvalid.With("templateId: the template is not valid: " + pipeline.AsError(err).Message)
	}
	out := &Template{Template: t, parsed: p}
	if subject != "" {
		if len(subject) > MaxTemplateSubject {
			return nil, pipeline.ErrInvalid.With(fmt.Sprintf("subject: must be at most %d bytes", MaxTemplateSubject))
		}
		if err := pipeline.CheckPrintable("subject", subject); err != nil {
			return nil, err
		}
		if out.subject, err = parseTemplate("subject", subject); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Render substitutes vars (named field in errors) into the template: HTML
// escaped in the html part, and refused in the subject if it holds a line
// break or a control character. A placeholder without a value or a
// default is a 400 naming it.
func (t *Template) Render(vars map[string]string, field string) (*Rendered, error) {
	r, err := t.parsed.render(t.subject, vars, field)
	if err != nil {
		return nil, err
	}
	return (*Rendered)(r), nil
}

// ---- template records ----

// maxTemplates bounds the templates of one account (each up to the body
// size limit).
const maxTemplates = 1000

// CreateTemplate validates and stores a new template.
func (s *Service) CreateTemplate(ctx context.Context, k *store.Key, f TemplateFields) (*store.Template, error) {
	if err := pipeline.RequirePermission(k, store.PermissionFull); err != nil {
		return nil, err
	}
	now := s.opt.Now().UTC()
	t := &store.Template{ID: store.NewID("tpl"), CreatedAt: now, UpdatedAt: now}
	applyTemplateFields(t, f)
	if _, err := checkTemplate(t); err != nil {
		return nil, err
	}
	// A cap, read then written: requests racing past it overshoot by
	// their number, not without bound.
	if n, err := s.store.TemplateCount(ctx, k.AccountID); err != nil {
		return nil, pipeline.StorageError(err)
	} else if n >= maxTemplates {
		return nil, pipeline.ErrConflict.Withf("an account may have at most %d templates; delete one first", maxTemplates)
	}
	if err := s.store.PutTemplate(ctx, k.AccountID, t); err != nil {
		return nil, pipeline.StorageError(err)
	}
	return t, nil
}

func applyTemplateFields(t *store.Template, f TemplateFields) {
	for _, p := range []struct {
		dst *string
		src *string
	}{{&t.Name, f.Name}, {&t.Subject, f.Subject}, {&t.HTML, f.HTML}, {&t.Text, f.Text}, {&t.From, f.From}, {&t.ReplyTo, f.ReplyTo}} {
		if p.src != nil {
			*p.dst = *p.src
		}
	}
}

// Template returns one of the account's templates.
func (s *Service) Template(ctx context.Context, k *store.Key, id string) (*store.Template, error) {
	if err := pipeline.RequirePermission(k, store.PermissionFull); err != nil {
		return nil, err
	}
	return s.template(ctx, k, id)
}

func (s *Service) template(ctx context.Context, k *store.Key, id string) (*store.Template, error) {
	t, err := s.store.Template(ctx, k.AccountID, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, pipeline.NotFound("template")
	}
	if err != nil {
		return nil, pipeline.StorageError(err)
	}
	return t, nil
}

// UpdateTemplate changes the given fields of a template (PATCH) and
// validates the result.
func (s *Service) UpdateTemplate(ctx context.Context, k *store.Key, id string, f TemplateFields) (*store.Template, error) {
	t, err := s.Template(ctx, k, id)
	if err != nil {
		return nil, err
	}
	applyTemplateFields(t, f)
	t.UpdatedAt = s.opt.Now().UTC()
	if _, err := checkTemplate(t); err != nil {
		return nil, err
	}
	if err := s.store.PutTemplate(ctx, k.AccountID, t); err != nil {
		return nil, pipeline.StorageError(err)
	}
	return t, nil
}

// DeleteTemplate removes a template.
func (s *Service) DeleteTemplate(ctx context.Context, k *store.Key, id string) error {
	if err := pipeline.RequirePermission(k, store.PermissionFull); err != nil {
		return err
	}
	err := s.store.DeleteTemplate(ctx, k.AccountID, id)
	if errors.Is(err, store.ErrNotFound) {
		return pipeline.NotFound("template")
	}
	if err != nil {
		return pipeline.StorageError(err)
	}
	return nil
}

// Templates lists the account's templates, newest first, limit a page
// (1–100, default 20) after the cursor; next is "" on the last page.
func (s *Service) Templates(ctx context.Context, k *store.Key, cursor string, limit int) ([]*store.Template, string, error) {
	if err := pipeline.RequirePermission(k, store.PermissionFull); err != nil {
		return nil, "", err
	}
	if limit <= 0 {
		limit = 20
	}
	if limit > 100 {
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
	ts, next, err := s.store.ListTemplates(ctx, k.AccountID, after, limit)
	if err != nil {
		return nil, "", pipeline.StorageError(err)
	}
	if next == 0 {
		return ts, "", nil
	}
	return ts, strconv.FormatInt(next, 10), nil
}
