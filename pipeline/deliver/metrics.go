package deliver

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the delivery worker's Prometheus series.
type Metrics struct {
	attempts       *prometheus.CounterVec
	attemptSeconds prometheus.Histogram
	queueDepth     *prometheus.GaugeVec
	postponed      *prometheus.CounterVec
	suspensions    *prometheus.CounterVec
	destinations   *prometheus.GaugeVec
	waiting        *prometheus.GaugeVec
}

// NewMetrics registers the series on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pigeonpost_delivery_attempts_total",
			Help: "Delivery attempts by result: delivered, deferred, bounced, failed.",
		}, []string{"result"}),
		attemptSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pigeonpost_delivery_attempt_seconds",
			Help:    "Duration of one delivery attempt, DNS to the remote's reply.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		queueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pigeonpost_delivery_queue_depth",
			Help: "Emails waiting: queued (in the stream) and retrying (scheduled).",
		}, []string{"state"}),
		postponed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pigeonpost_delivery_postponed_total",
			Help: "Emails put back without an attempt by traffic shaping, by reason (suspended, rate, connections) and provider group (configured groups, else other).",
		}, []string{"reason", "group"}),
		suspensions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pigeonpost_delivery_destination_suspensions_total",
			Help: "Back-off replies that suspended a destination (or found it suspended), by provider group.",
		}, []string{"group"}),
		destinations: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pigeonpost_delivery_destinations",
			Help: "Destinations limited in the last hour, by state (suspended now, limited) and provider group, as seen by this process within a few seconds.",
		}, []string{"state", "group"}),
		waiting: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pigeonpost_delivery_destination_waiting",
			Help: "Emails deferred for the destinations limited or deferring in the last hour (held back by their limits or after their answer, next attempt still to come), by provider group.",
		}, []string{"group"}),
	}
	for _, state := range []string{"queued", "retrying"} {
		m.queueDepth.WithLabelValues(state) // present from the first scrape
	}
	if reg != nil {
		reg.MustRegister(m.attempts, m.attemptSeconds, m.queueDepth, m.postponed, m.suspensions, m.destinations, m.waiting)
	}
	return m
}
