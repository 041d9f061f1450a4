package webhooks

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the webhook dispatcher's Prometheus series.
type Metrics struct {
	events         *prometheus.CounterVec
	attempts       *prometheus.CounterVec
	attemptSeconds prometheus.Histogram
	queueDepth     prometheus.Gauge
}

// NewMetrics registers the series on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pigeonpost_webhooks_events_total",
			Help: "Events read by the webhook dispatcher: queued (at least one delivery) or skipped.",
		}, []string{"result"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pigeonpost_webhooks_attempts_total",
			Help: "Webhook delivery attempts by result: delivered, retried, failed (given up), dropped (endpoint deleted).",
		}, []string{"result"}),
		attemptSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pigeonpost_webhooks_attempt_seconds",
			Help:    "Duration of one webhook delivery attempt.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		queueDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pigeonpost_webhooks_queue_depth",
			Help: "Webhook deliveries waiting for an attempt or a retry.",
		}),
	}
	for _, r := range []string{"queued", "skipped"} {
		m.events.WithLabelValues(r) // present from the first scrape
	}
	for _, r := range []string{"delivered", "retried", "failed", "dropped"} {
		m.attempts.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.events, m.attempts, m.attemptSeconds, m.queueDepth)
	}
	return m
}
