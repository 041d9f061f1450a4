// Package metricsdoc holds no code: its test keeps docs/monitoring.md and
// the Prometheus metric names in the Go sources in step, in both directions.
package metricsdoc
