package engagement

import (
	"context"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// AnalyticsQuery selects the days and the mail GET /v1/analytics counts.
type AnalyticsQuery struct {
	Range  string // "7d", "30d" … ending today (UTC); ignored when From is set
	From   string // YYYY-MM-DD, inclusive
	To     string // YYYY-MM-DD, inclusive; default today
	Domain string // a sending domain name or id; "" for all mail
	Tag    string // "" for all mail
}

// maxAnalyticsDays bounds a query: one hash is read per day.
const maxAnalyticsDays = 366

// Counts are the analytics counters of a period. Opens and clicks exclude
// bot-filtered hits (counted apart); unique opens include opens through
// image proxies, of which ProxiedUniqueOpens came first through one and
// MachineUniqueOpens through Apple Mail Privacy Protection, which fetches
// the pixel whether or not anyone reads the mail.
type Counts struct {
	Sent               int64
	Delivered          int64
	Deferred           int64
	Bounced            int64
	Failed             int64
	Complained         int64
	Opens              int64
	UniqueOpens        int64
	ProxiedUniqueOpens int64
	MachineUniqueOpens int64
	Clicks             int64
	UniqueClicks       int64
	BotFilteredOpens   int64
	BotFilteredClicks  int64
	ClicksAfterExpiry  int64 // on links of mail whose record had expired
}

// Analytics is the answer of GET /v1/analytics. Rates are fractions (0.25
// is 25 %) rounded to four places: opens and clicks per delivered email,
// bounces per sent email.
type Analytics struct {
	From   string
	To     string
	Domain *string
	Tag    *string
	Counts
	OpenRate float64
	// HumanOpenRate is OpenRate without Apple Mail Privacy Protection's
	// opens: HumanUniqueOpens per delivered email.
	HumanOpenRate float64
	ClickRate     float64
	BounceRate    float64
	Daily         []DayCounts
}

// DayCounts are one day's counters.
type DayCounts struct {
	Date string
	Counts
}

// Analytics sums the account's counters over the query's days. It reads one
// hash per day: the cost does not grow with the number of events.
func (s *Service) Analytics(ctx context.Context, k *store.Key, q AnalyticsQuery) (*Analytics, error) {
	days, from, to, err := analyticsDays(q, s.opt.Now().UTC())
	if err != nil {
		return nil, err
	}
	a := &Analytics{From: from, To: to, Daily: make([]DayCounts, 0, len(days))}
	prefix := ""
	if q.Domain != "" {
		name := strings.ToLower(q.Domain)
		if strings.HasPrefix(name, "dom_") {
			d, err := s.store.DomainByID(ctx, k.AccountID, q.Domain)
			if err != nil {
				return nil, pipeline.NotFound("domain")
			}
			name = d.Name
		}
		a.Domain = &name
		prefix = "d:" + name + ":"
	}
	if q.Tag != "" {
		if q.Domain != "" {
			return nil, pipeline.ErrInvalid.With("domain, tag: filter by one or the other")
		}
		tag := q.Tag
		a.Tag = &tag
		prefix = "t:" + tag + ":"
	}
	hashes, err := s.store.Stats(ctx, k.AccountID, days)
	if err != nil {
		return nil, pipeline.StorageError(err)
	}
	for i, h := range hashes {
		c := countsFrom(h, prefix)
		a.Daily = append(a.Daily, DayCounts{Date: days[i], Counts: c})
		a.Counts.add(c)
	}
	a.OpenRate = rate(a.UniqueOpens, a.Delivered)
	a.HumanOpenRate = rate(a.HumanUniqueOpens(), a.Delivered)
	a.ClickRate = rate(a.UniqueClicks, a.Delivered)
	a.BounceRate = rate(a.Bounced, a.Sent)
	return a, nil
}

// analyticsDays returns the days a query covers, oldest first.
func analyticsDays(q AnalyticsQuery, now time.Time) (days []string, from, to string, err error) {
	end := now
	if q.To != "" {
		if end, err = time.Parse(time.DateOnly, q.To); err != nil {
			return nil, "", "", pipeline.ErrInvalid.With("to: must be a date, YYYY-MM-DD")
		}
	}
	var start time.Time
	switch {
	case q.From != "":
		if start, err = time.Parse(time.DateOnly, q.From); err != nil {
			return nil, "", "", pipeline.ErrInvalid.With("from: must be a date, YYYY-MM-DD")
		}
	default:
		r := q.Range
		if r == "" {
			r = "30d"
		}
		n, err := strconv.Atoi(strings.TrimSuffix(r, "d"))
		if !strings.HasSuffix(r, "d") || err != nil || n < 1 || n > maxAnalyticsDays {
			return nil, "", "", pipeline.ErrInvalid.With("range: must be a number of days such as 7d or 30d, at most 366d")
		}
		start = end.AddDate(0, 0, -(n - 1))
	}
	start, end = start.UTC().Truncate(24*time.Hour), end.UTC().Truncate(24*time.Hour)
	if start.After(end) {
		return nil, "", "", pipeline.ErrInvalid.With("from: must not be after to")
	}
	if end.Sub(start) >= maxAnalyticsDays*24*time.Hour {
		return nil, "", "", pipeline.ErrInvalid.With("from, to: at most 366 days")
	}
	for d := start; !d.After(end); d = d.AddDate(0, 0, 1) {
		days = append(days, store.StatsDay(d))
	}
	return days, store.StatsDay(start), store.StatsDay(end), nil
}

func countsFrom(h map[string]string, prefix string) Counts {
	get := func(name string) int64 {
		n, _ := strconv.ParseInt(h[prefix+name], 10, 64)
		return n
	}
	return Counts{
		Sent: get(store.StatSent), Delivered: get(store.StatDelivered), Deferred: get(store.StatDeferred),
		Bounced: get(store.StatBounced), Failed: get(store.StatFailed), Complained: get(store.StatComplained),
		Opens: get(store.StatOpens), UniqueOpens: get(store.StatUniqueOpens),
		ProxiedUniqueOpens: get(store.StatProxiedUniqueOpens), MachineUniqueOpens: get(store.StatMachineUniqueOpens),
		Clicks: get(store.StatClicks), UniqueClicks: get(store.StatUniqueClicks),
		BotFilteredOpens: get(store.StatBotOpens), BotFilteredClicks: get(store.StatBotClicks),
		ClicksAfterExpiry: get(store.StatExpiredClicks),
	}
}

// Raw and human counts side by side: the counters count people's and
// image proxies' hits (Opens, Clicks) and bots' apart (BotFiltered*);
// MachineUniqueOpens are Apple Mail Privacy Protection's, which fetches
// every image whether or not anyone reads the mail.

// RawOpens is every open hit, bots' included.
func (c Counts) RawOpens() int64 { return c.Opens + c.BotFilteredOpens }

// RawClicks is every click hit, bots' included.
func (c Counts) RawClicks() int64 { return c.Clicks + c.BotFilteredClicks }

// HumanUniqueOpens are the first opens neither a bot's nor Apple's
// privacy protection's: the opens a person is known to have made.
func (c Counts) HumanUniqueOpens() int64 { return c.UniqueOpens - c.MachineUniqueOpens }

func (c *Counts) add(o Counts) {
	c.Sent += o.Sent
	c.Delivered += o.Delivered
	c.Deferred += o.Deferred
	c.Bounced += o.Bounced
	c.Failed += o.Failed
	c.Complained += o.Complained
	c.Opens += o.Opens
	c.UniqueOpens += o.UniqueOpens
	c.ProxiedUniqueOpens += o.ProxiedUniqueOpens
	c.MachineUniqueOpens += o.MachineUniqueOpens
	c.Clicks += o.Clicks
	c.UniqueClicks += o.UniqueClicks
	c.BotFilteredOpens += o.BotFilteredOpens
	c.BotFilteredClicks += o.BotFilteredClicks
	c.ClicksAfterExpiry += o.ClicksAfterExpiry
}

// rate is n/of rounded to four places; 0 when of is 0.
func rate(n, of int64) float64 {
	if of == 0 {
		return 0
	}
	return math.Round(float64(n)/float64(of)*10000) / 10000
}
