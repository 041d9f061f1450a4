package pipeline

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the submission's Prometheus series. Labels come only from
// bounded sets: the source and the error code.
type Metrics struct {
	accepted *prometheus.CounterVec
	rejected *prometheus.CounterVec
	// inFlowDelays counts the submissions slowed by the in-flow control.
	inFlowDelays prometheus.Counter
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
	}
	if reg != nil {
		reg.MustRegister(m.accepted, m.rejected, m.inFlowDelays)
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
