package compose

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"mime"
	"net/url"
	"path"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pigeonpost/pigeonpost/internal/membudget"
	"github.com/pigeonpost/pigeonpost/internal/safehttp"
	"github.com/pigeonpost/pigeonpost/pipeline"
)

// Attachment limits, as documented: 7 MB a file, 25 MB in all (decoded).
const (
	MaxAttachmentBytes      = 7 << 20
	MaxAttachmentTotalBytes = 25 << 20
	MaxAttachments          = 100
	maxFilenameLen          = 255
)

// Attachment is a file to attach, as the REST API receives it: Content
// (base64) or Path (an HTTPS URL that the server fetches), not both.
// ContentID makes it an inline part that the HTML refers to as cid:<id>.
type Attachment struct {
	Filename    string `json:"filename"`
	Content     string `json:"content,omitempty"`
	Path        string `json:"path,omitempty"`
	ContentType string `json:"contentType,omitempty"`
	ContentID   string `json:"contentId,omitempty"`
}

// Fetcher downloads attachment paths; *safehttp.Client is the one in use
// (SSRF guard at dial time, size cap, deadline, HTTPS only).
type Fetcher interface {
	Fetch(ctx context.Context, rawURL string) (body []byte, contentType string, err error)
}

// FetchTimeout bounds each attachment download when the Fetcher has no
// deadline of its own.
const FetchTimeout = 30 * time.Second

// resolveAttachments decodes or fetches every attachment and checks the
// limits. Errors name the attachment by its index. Everything that needs
// no network is done first, for every attachment: fields, count, base64
// and sizes; then, when there are paths, beforeFetch (which refuses a send
// that is to be refused, so that it fetches nothing), and only then are
// the paths fetched.
func (s *Service) resolveAttachments(ctx context.Context, in []Attachment, beforeFetch func() error) ([]ComposeAttachment, error) {
	if len(in) > MaxAttachments {
		return nil, pipeline.ErrInvalid.With(fmt.Sprintf("attachments: at most %d attachments are allowed (got %d)", MaxAttachments, len(in)))
	}
	out := make([]ComposeAttachment, len(in))
	total := 0
	add := func(i int, a Attachment, data []byte, contentType string) error {
		field := fmt.Sprintf("attachments[%d]", i)
		if len(data) > MaxAttachmentBytes {
			return pipeline.ErrInvalid.With(fmt.Sprintf("%s: %s is %d bytes; the limit is %d bytes (7 MB) a file", field, pipeline.Quote(a.Filename), len(data), MaxAttachmentBytes))
		}
		total += len(data)
		if total > MaxAttachmentTotalBytes {
			return pipeline.ErrInvalid.With(fmt.Sprintf("attachments: %d bytes in all exceeds the limit of %d bytes (25 MB)", total, MaxAttachmentTotalBytes))
		}
		ct, err := attachmentType(field, contentType, a.Filename)
		if err != nil {
			return err
		}
		out[i] = ComposeAttachment{Filename: a.Filename, ContentType: ct, ContentID: a.ContentID, Data: data}
		return nil
	}
	var paths []int
	for i, a := range in {
		field := fmt.Sprintf("attachments[%d]", i)
		if err := checkAttachmentFields(field, a); err != nil {
			return nil, err
		}
		switch {
		case a.Content != "" && a.Path != "":
			return nil, pipeline.ErrInvalid.With(field + ": give content or path, not both")
		case a.Path != "":
			if a.ContentType != "" {
				if _, err := attachmentType(field, a.ContentType, a.Filename); err != nil {
					return nil, err
				}
			}
			paths = append(paths, i)
			continue
		}
		data, err := decodeBase64(field, a.Content)
		if err != nil {
			return nil, err
		}
		if err := add(i, a, data, a.ContentType); err != nil {
			return nil, err
		}
	}
	if len(paths) > 0 && beforeFetch != nil {
		if err := beforeFetch(); err != nil {
			return nil, err
		}
	}
	for _, i := range paths {
		a := in[i]
		if err := reserveFetch(ctx); err != nil {
			return nil, err
		}
		body, fetchedType, err := s.fetchAttachment(ctx, fmt.Sprintf("attachments[%d]", i), a.Path)
		if err != nil {
			return nil, err
		}
		contentType := a.ContentType
		if _, _, err := mime.ParseMediaType(fetchedType); contentType == "" && err == nil {
			contentType = fetchedType // the server's, when the request gives none
		}
		if err := add(i, a, body, contentType); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// reserveFetch grows the request's reservation of the message memory
// (membudget.FromContext; none outside a request) by what a file fetched
// by URL may take, before it is fetched: fetched files are the request's
// memory as its body is, within its account's share. It waits for the
// budget at most FetchTimeout.
func reserveFetch(ctx context.Context) error {
	res := membudget.FromContext(ctx)
	if res == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, FetchTimeout)
	defer cancel()
	err := res.Grow(ctx, res.Held()+pipeline.MessageCost(MaxAttachmentBytes))
	switch {
	case err == nil:
		return nil
	case errors.Is(err, membudget.ErrOverShare):
		return pipeline.ErrAccountBusy
	default:
		return pipeline.ErrBusy
	}
}

func checkAttachmentFields(field string, a Attachment) error {
	if strings.TrimSpace(a.Filename) == "" {
		return pipeline.ErrInvalid.With(field + ".filename: is required")
	}
	if utf8.RuneCountInString(a.Filename) > maxFilenameLen {
		return pipeline.ErrInvalid.With(fmt.Sprintf("%s.filename: must be at most %d characters", field, maxFilenameLen))
	}
	for _, f := range []struct{ name, v string }{
		{".filename", a.Filename}, {".contentType", a.ContentType}, {".contentId", a.ContentID}, {".path", a.Path},
	} {
		if err := pipeline.CheckPrintable(field+f.name, f.v); err != nil {
			return err
		}
	}
	if strings.ContainsAny(a.Filename, `/\`) {
		return pipeline.ErrInvalid.With(field + ".filename: must be a file name, without / or \\")
	}
	if strings.ContainsAny(a.ContentID, "<> \t\"") {
		return pipeline.ErrInvalid.With(field + ".contentId: must not contain <, >, quotes or spaces (write it without the angle brackets)")
	}
	if a.Content == "" && a.Path == "" {
		return pipeline.ErrInvalid.With(field + ": content (base64) or path (an HTTPS URL) is required")
	}
	return nil
}

// decodeBase64 accepts standard base64 with or without padding, with line
// breaks (as many encoders wrap at 76 columns). The decoded size is checked
// before decoding so that an oversized file is refused without allocating it.
func decodeBase64(field, s string) ([]byte, error) {
	if strings.ContainsAny(s, "\r\n \t") {
		s = strings.Map(func(r rune) rune {
			if r == '\r' || r == '\n' || r == ' ' || r == '\t' {
				return -1
			}
			return r
		}, s)
	}
	if base64.RawStdEncoding.DecodedLen(len(strings.TrimRight(s, "="))) > MaxAttachmentBytes {
		return nil, pipeline.ErrInvalid.With(fmt.Sprintf("%s: the file exceeds the limit of %d bytes (7 MB) a file", field, MaxAttachmentBytes))
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		b, err = base64.RawStdEncoding.DecodeString(s)
	}
	if err != nil {
		return nil, pipeline.ErrInvalid.With(field + ".content: is not valid base64")
	}
	return b, nil
}

// fetchAttachment downloads an attachment path. Only https URLs without
// credentials are fetched; the Fetcher refuses private, loopback and
// link-local addresses at dial time (after DNS, after each redirect).
func (s *Service) fetchAttachment(ctx context.Context, field, raw string) ([]byte, string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.Hostname() == "" {
		return nil, "", pipeline.ErrInvalid.With(field + ".path: must be an https:// URL")
	}
	if u.User != nil {
		return nil, "", pipeline.ErrInvalid.With(field + ".path: URLs with credentials are not allowed")
	}
	if s.opt.Fetcher == nil {
		return nil, "", pipeline.ErrInvalid.With(field + ".path: fetching attachments from URLs is not enabled on this server; send content instead")
	}
	ctx, cancel := context.WithTimeout(ctx, FetchTimeout)
	defer cancel()
	body, ct, err := s.opt.Fetcher.Fetch(ctx, u.String())
	switch {
	case err == nil:
		return body, ct, nil
	case errors.Is(err, safehttp.ErrTooLarge):
		return nil, "", pipeline.ErrInvalid.With(fmt.Sprintf("%s.path: the file exceeds the limit of %d bytes (7 MB) a file", field, MaxAttachmentBytes))
	case errors.Is(err, safehttp.ErrForbiddenAddress):
		return nil, "", pipeline.ErrInvalid.With(field + ".path: the URL's host is on a private, loopback or link-local address, which is not allowed").WithCause(err)
	case errors.Is(err, safehttp.ErrRefusedURL):
		return nil, "", pipeline.ErrInvalid.With(field + ".path: the URL, or one it redirects to, is not allowed: it must be https://, without a user name or password, " +
			"with a host name or an IP address written in full").WithCause(err)
	case errors.Is(err, safehttp.ErrTooManyRedirects):
		return nil, "", pipeline.ErrInvalid.With(fmt.Sprintf("%s.path: the URL redirects more than %d times", field, safehttp.DefaultMaxRedirects)).WithCause(err)
	case errors.Is(err, safehttp.ErrTimeout) || ctx.Err() != nil:
		return nil, "", pipeline.ErrInvalid.With(field + ".path: fetching the URL timed out").WithCause(err)
	}
	return nil, "", pipeline.ErrInvalid.With(field + ".path: the URL could not be fetched").WithCause(err)
}

// attachmentType returns the content type to declare: the given one (which
// must parse), else the one for the file's extension, else
// application/octet-stream.
func attachmentType(field, given, filename string) (string, error) {
	given = strings.TrimSpace(given)
	if given != "" {
		mt, params, err := mime.ParseMediaType(given)
		if err != nil || !strings.Contains(mt, "/") || strings.HasPrefix(mt, "multipart/") || strings.HasPrefix(mt, "message/") {
			return "", pipeline.ErrInvalid.With(field + ".contentType: " + pipeline.Quote(given) + " is not a valid content type")
		}
		return mime.FormatMediaType(mt, params), nil
	}
	if t := mime.TypeByExtension(strings.ToLower(path.Ext(filename))); t != "" {
		return t, nil
	}
	return "application/octet-stream", nil
}
