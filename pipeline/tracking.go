package pipeline

import (
	"bytes"
	"context"
	"errors"
	"strconv"

	"github.com/pigeonpost/pigeonpost/pipeline/store"
	"github.com/pigeonpost/pigeonpost/tracking"
)

// rewrite returns the body to store for e: base with the open pixel and
// click links of e's own ids when e asks for tracking, else base itself.
func (s *Service) rewrite(e *store.Email, base []byte) ([]byte, []string, error) {
	if !e.TrackOpens && !e.TrackClicks {
		return base, nil, nil
	}
	var out bytes.Buffer
	out.Grow(len(base) + len(base)/8)
	res, err := tracking.Rewrite(&out, bytes.NewReader(base), tracking.Options{
		Opens:    e.TrackOpens,
		Clicks:   e.TrackClicks,
		PixelURL: s.opt.PublicURL + "/v1/track/open/" + e.ID,
		ClickURL: func(index int, _ string) string {
			return s.opt.PublicURL + "/v1/track/click/" + s.signer.ClickID(e.ID, index)
		},
	})
	if err != nil {
		return nil, nil, ErrBadMessage("the message could not be prepared for tracking").WithCause(err)
	}
	e.Links = res.Links
	return out.Bytes(), res.Warnings, nil
}

// Visitor is what a tracking request says about who made it. In privacy mode
// the caller leaves it empty.
type Visitor struct {
	IP        string
	UserAgent string
	Referer   string
}

func (v Visitor) data() map[string]string {
	d := map[string]string{}
	if v.IP != "" {
		d["ip"] = v.IP
	}
	if v.UserAgent != "" {
		d["userAgent"] = v.UserAgent
	}
	if v.Referer != "" {
		d["referer"] = v.Referer
	}
	return d
}

// RecordOpen records an open of the email. Unknown ids are ignored: the
// pixel answers the same whatever happens.
func (s *Service) RecordOpen(ctx context.Context, emailID string, v Visitor) error {
	e, err := s.store.Email(ctx, emailID)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	}
	now := s.opt.Now().UTC()
	if _, err := s.store.SetOnce(ctx, e.ID, store.FieldOpenedAt, store.FormatTime(now)); err != nil {
		return err
	}
	return s.store.AddEvent(ctx, store.Event{Type: "opened", Timestamp: now, EmailID: e.ID, AccountID: e.AccountID, Data: v.data()})
}

// ResolveClick checks a click id and returns the destination the original
// mail held for it, recording the click. A tampered or unknown id is
// ErrNotFound: no redirect to anything the mail did not contain.
func (s *Service) ResolveClick(ctx context.Context, clickID string, v Visitor) (string, error) {
	emailID, index, ok := s.signer.ParseClickID(clickID)
	if !ok {
		return "", ErrNotFound("link")
	}
	e, err := s.store.Email(ctx, emailID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (index < 0 || index >= len(e.Links))) {
		return "", ErrNotFound("link")
	}
	if err != nil {
		return "", storageError(err)
	}
	url := e.Links[index]
	now := s.opt.Now().UTC()
	data := v.data()
	data["linkUrl"] = url
	data["linkIndex"] = strconv.Itoa(index)
	if _, err := s.store.SetOnce(ctx, e.ID, store.FieldClickedAt, store.FormatTime(now)); err != nil {
		s.opt.Logger.Warn("recording click failed", "email", e.ID, "err", err)
	} else if err := s.store.AddEvent(ctx, store.Event{Type: "clicked", Timestamp: now, EmailID: e.ID, AccountID: e.AccountID, Data: data}); err != nil {
		s.opt.Logger.Warn("recording click failed", "email", e.ID, "err", err)
	}
	return url, nil
}
