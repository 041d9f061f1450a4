package smtpd

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the SMTP front end's Prometheus series.
type Metrics struct {
	sessions       prometheus.Counter
	authFailures   prometheus.Counter
	refusedConns   prometheus.Counter
	proxyRefused   *prometheus.CounterVec
	dataSeconds    prometheus.Histogram
	budgetTimeouts prometheus.Counter
}

// NewMetrics registers the series on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		sessions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pigeonpost_smtp_sessions_total", Help: "SMTP sessions started (after EHLO, and again after STARTTLS).",
		}),
		authFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pigeonpost_smtp_auth_failures_total", Help: "AUTH attempts refused for bad credentials.",
		}),
		refusedConns: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pigeonpost_smtp_connections_refused_total", Help: "Connections refused at the connection cap.",
		}),
		proxyRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pigeonpost_smtp_proxy_refused_total",
			Help: "Connections closed under smtp.proxy_protocol: from a source not in smtp.proxy_trusted (reason untrusted), or without a valid PROXY header (header).",
		}, []string{"reason"}),
		dataSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pigeonpost_smtp_data_seconds",
			Help:    "Time from the start of DATA to the reply, including persistence.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		budgetTimeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pigeonpost_smtp_data_budget_timeouts_total",
			Help: "DATA answered 451 4.3.1: the message could not get its share of smtp.data_memory_bytes before the data deadline.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.sessions, m.authFailures, m.refusedConns, m.proxyRefused, m.dataSeconds, m.budgetTimeouts)
	}
	return m
}
