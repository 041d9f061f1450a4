package engagement

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the tracking hits' Prometheus series (hits.go): waiting to
// be recorded, and by outcome.
type Metrics struct {
	hitsQueued prometheus.Gauge
	hits       *prometheus.CounterVec
	hitRetries prometheus.Counter
}

// NewMetrics registers the series on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		hitsQueued: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pigeonpost_tracking_hits_queued",
			Help: "Tracking hits answered and waiting to be recorded in Redis.",
		}),
		hitRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pigeonpost_tracking_hit_batch_retries_total",
			Help: "Batches of tracking hits tried again after Redis refused them.",
		}),
		hits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pigeonpost_tracking_hits_total",
			Help: "Tracking hits by outcome: recorded, unknown (no such email or link), failed (Redis), dropped (queue full), capped (the email has all its events), rate_limited (the client address is over tracking.max_hits_per_ip_per_minute).",
		}, []string{"result"}),
	}
	if reg != nil {
		reg.MustRegister(m.hitsQueued, m.hits, m.hitRetries)
	}
	return m
}
