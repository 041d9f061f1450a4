package pipeline

import (
	"bytes"
	"context"
	"net/url"

	"github.com/pigeonpost/pigeonpost/pipeline/store"
	"github.com/pigeonpost/pigeonpost/tracking"
)

// trackPlan is the tracking of one submission: what is granted, and how the
// URLs are made.
type trackPlan struct {
	Tracking
	baseURL  string // scheme://host[:port][/path] of pixel and click URLs
	pixelTop bool   // pixel at the top of the HTML rather than before </body>
	// preview: click ids the click endpoint refuses (tracking.Signer.PreviewClickID).
	preview   bool
	publicURL string // Options.PublicURL, when the plan was made
}

// Warnings given when settings turn requested tracking off.
const (
	warnTrackingDisabled = "tracking is disabled for this account; the tracking options were ignored"
	warnOpensDisabled    = "open tracking is disabled for the sending domain; the opens option was ignored"
	warnClicksDisabled   = "click tracking is disabled for the sending domain; the clicks option was ignored"
)

// trackingFor decides the tracking of one submission: what the REST options
// ask for (requested, nil for SMTP), then the X-SP-Track-* headers, limited
// by the account's and the From domain's settings, with a warning for each
// request the settings refuse. It also picks the host of the tracking URLs
// (the domain's verified tracking domain, else Options.PublicURL) and the
// pixel placement.
func (s *Service) trackingFor(ctx context.Context, k *store.Key, requested *Tracking, msg *submittedMessage) (trackPlan, []string, error) {
	var t trackPlan
	if requested != nil {
		t.Opens, t.Clicks = requested.Opens, requested.Clicks
	}
	if msg.trackOpens != nil {
		t.Opens = *msg.trackOpens
	}
	if msg.trackClicks != nil {
		t.Clicks = *msg.trackClicks
	}
	if !t.Opens && !t.Clicks {
		return trackPlan{}, nil, nil
	}
	st, err := s.TrackingSettings(ctx, k.AccountID, DomainOf(msg.from))
	if err != nil {
		return trackPlan{}, nil, StorageError(err)
	}
	if !st.Account.TrackingEnabled {
		return trackPlan{}, []string{warnTrackingDisabled}, nil
	}
	var warnings []string
	if st.Domain != nil {
		if t.Opens && !st.Domain.OpenTracking {
			t.Opens = false
			warnings = append(warnings, warnOpensDisabled)
		}
		if t.Clicks && !st.Domain.ClickTracking {
			t.Clicks = false
			warnings = append(warnings, warnClicksDisabled)
		}
	}
	t.pixelTop = st.Account.PixelPlacement == store.PixelTop
	t.baseURL, t.publicURL = s.opt.PublicURL, s.opt.PublicURL
	if st.Host.Verified() {
		t.baseURL = withHost(s.opt.PublicURL, st.Host.Host)
	}
	return t, warnings, nil
}

// withHost returns base with its host name replaced by host, keeping the
// scheme, port and path: the tracking domain is a CNAME of the public host,
// so it reaches the same listener.
func withHost(base, host string) string {
	u, err := url.Parse(base)
	if err != nil {
		return base
	}
	if p := u.Port(); p != "" {
		host += ":" + p
	}
	u.Host = host
	return u.String()
}

// record writes the plan onto e, which keeps it for its renders (Render):
// what is tracked, the tracking domain when there is one (the public URL
// is left for Options.PublicURL to say when e is rendered), the pixel's
// placement.
func (t trackPlan) record(e *store.Email) {
	e.TrackOpens, e.TrackClicks = t.Opens, t.Clicks
	if !t.Opens && !t.Clicks {
		return
	}
	e.PixelTop = t.pixelTop
	if t.baseURL != "" && t.baseURL != t.publicURL {
		e.TrackBase = t.baseURL
	}
}

// Render returns the MIME e goes out as, made from stored, the body the
// store holds for it (store.Store.Body): its message with e's own open
// pixel and click links when e is tracked, and what the rewrite reports
// (the links' destinations, the parts it left unchanged). A record from
// before messages were stored once holds its tracked copy: it is stored
// as it goes out. Delivery renders at each attempt, and the content API
// for each read; all renders of one email are the same bytes. It holds
// stored and the copy: RenderCost says how much that is.
func (s *Service) Render(e *store.Email, stored []byte) ([]byte, tracking.Result) {
	if e.Message == "" || (!e.TrackOpens && !e.TrackClicks) {
		return stored, tracking.Result{}
	}
	out, res, _ := s.rewrite(e, stored, trackPlan{baseURL: e.TrackBase, pixelTop: e.PixelTop}) // to a bytes.Buffer: cannot fail
	return out, res
}

// RenderCost is the memory that rendering an email whose stored body is
// size bytes holds: the body, and when it has a copy to make, what the
// submission counted for the rewrite of one recipient's copy when it made
// it (messageCopies): the rewriter's decoded HTML and the copy, up to an
// eighth larger than the body.
func (s *Service) RenderCost(e *store.Email, size int64) int64 {
	if e.Message == "" || (!e.TrackOpens && !e.TrackClicks) {
		return size
	}
	return 3*size + size/8 + 512
}

// rewrite returns base with the open pixel and click links of e's own
// ids when e asks for tracking, else base itself; and what the rewrite
// reports (its warnings, the links found).
func (s *Service) rewrite(e *store.Email, base []byte, plan trackPlan) ([]byte, tracking.Result, error) {
	if !e.TrackOpens && !e.TrackClicks {
		return base, tracking.Result{}, nil
	}
	var out bytes.Buffer
	out.Grow(len(base) + len(base)/8 + 512)
	res, err := tracking.RewriteBytes(&out, base, s.trackingOptions(e, plan))
	if err != nil {
		return nil, res, ErrBadMessage.With("the message could not be prepared for tracking").WithCause(err)
	}
	return out.Bytes(), res, nil
}

// trackingOptions are the options of the tracking rewrite of e's copy.
func (s *Service) trackingOptions(e *store.Email, plan trackPlan) tracking.Options {
	urlBase := plan.baseURL
	if urlBase == "" {
		urlBase = s.opt.PublicURL
	}
	clickID := s.signer.SealedClickID
	if plan.preview {
		clickID = s.signer.PreviewClickID
	}
	return tracking.Options{
		Opens:     e.TrackOpens,
		Clicks:    e.TrackClicks,
		TextLinks: e.TrackClicks,
		PixelTop:  plan.pixelTop,
		PixelURL:  urlBase + "/v1/track/open/" + e.ID,
		// The destination is sealed in the id: the link redirects for as
		// long as the secret is accepted, after the record has expired.
		ClickURL: func(index int, dest string) string {
			return urlBase + "/v1/track/click/" + clickID(e.AccountID, e.ID, index, dest)
		},
	}
}
