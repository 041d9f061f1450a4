package pipeline

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the pipeline's Prometheus series. Labels come only from
// bounded sets: the source and the error code.
type Metrics struct {
	accepted *prometheus.CounterVec
	rejected *prometheus.CounterVec
	// inFlowDelays counts the submissions slowed by the in-flow control.
	inFlowDelays prometheus.Counter
	// Tracking hits (hits.go): waiting to be recorded, and by outcome.
	hitsQueued prometheus.Gauge
	hits       *prometheus.CounterVec
	hitRetries prometheus.Counter
}

// NewMetrics registers the pipeline's series on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pigeonpost_pipeline_messages_accepted_total",
			Help: "Submissions stored and queued, by source (smtp, api).",
		}, []string{"source"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pigeonpost_pipeline_messages_rejected_total",
			Help: "Submissions refused, by source and reason (the error code).",
		}, []string{"source", "reason"}),
		inFlowDelays: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pigeonpost_pipeline_inflow_delays_total",
			Help: "Submissions that waited delivery.in_flow_delay because more than delivery.backlog_limit messages were queued.",
		}),
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
			Help: "Tracking hits by outcome: recorded, unknown (no such email or link), failed (Redis), dropped (queue full).",
		}, []string{"result"}),
	}
	if reg != nil {
		reg.MustRegister(m.accepted, m.rejected, m.inFlowDelays, m.hitsQueued, m.hits, m.hitRetries)
	}
	return m
}

func (m *Metrics) observeSubmit(source string, err error) {
	if err == nil {
		m.accepted.WithLabelValues(source).Inc()
		return
	}
	m.rejected.WithLabelValues(source, string(AsError(err).Code)).Inc()
}
