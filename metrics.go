package deviceflow

import (
	"errors"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// The device flow's Prometheus metrics. Like Caddy's own (see
// reverseproxy/metrics.go), the collectors are made once per process and
// registered with the registry of every config that provisions the
// handler: each reload brings a fresh registry, and the counts carry on
// across reloads. Several device_flow handlers share them.
var deviceFlowMetrics struct {
	once             sync.Once
	events           *prometheus.CounterVec
	upstreamDuration *prometheus.HistogramVec
	upstreamErrors   *prometheus.CounterVec
	// byEvent holds the counter of every known event, so that an event
	// is one atomic add, and an unknown name cannot grow the label set.
	byEvent map[string]prometheus.Counter
}

func initDeviceFlowMetrics() {
	const ns, sub = "caddy", "device_flow"
	m := &deviceFlowMetrics
	m.events = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns,
		Subsystem: sub,
		Name:      "events_total",
		Help:      "Device flow events: codes issued, approvals, denials, expirations, slow_downs, deliveries, wrong codes, limits hit, codes refused off issue_from and codes locked by code_networks.",
	}, []string{"event"})
	m.upstreamDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: ns,
		Subsystem: sub,
		Name:      "upstream_duration_seconds",
		Help:      "Time taken by calls to the upstream token endpoint, by operation (token, refresh) and outcome (ok, error, failed).",
		Buckets:   prometheus.DefBuckets,
	}, []string{"op", "outcome"})
	m.upstreamErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns,
		Subsystem: sub,
		Name:      "upstream_errors_total",
		Help:      "Calls to the upstream token endpoint that did not succeed: outcome error (it answered an OAuth error) or failed (no usable answer).",
	}, []string{"op", "outcome"})
	// Every event appears (at 0) from the start, so that rate() and
	// alerts work before the first occurrence.
	events := flow.Events()
	m.byEvent = make(map[string]prometheus.Counter, len(events))
	for _, e := range events {
		m.byEvent[e] = m.events.WithLabelValues(e)
	}
}

// newMetrics registers the collectors with this config's registry and
// returns the observer that feeds them.
func newMetrics(ctx caddy.Context, logger *zap.Logger) flow.Observer {
	deviceFlowMetrics.once.Do(initDeviceFlowMetrics)
	registry := ctx.GetMetricsRegistry()
	if registry == nil {
		return metricsObserver{}
	}
	for _, c := range []prometheus.Collector{
		deviceFlowMetrics.events,
		deviceFlowMetrics.upstreamDuration,
		deviceFlowMetrics.upstreamErrors,
	} {
		// A second device_flow handler in the same config registers the
		// same collectors again: that is expected and harmless.
		var already prometheus.AlreadyRegisteredError
		if err := registry.Register(c); err != nil && !errors.As(err, &already) {
			// Only a foreign collector with our names gets here; the flow
			// must work regardless, so say so instead of failing.
			logger.Error("device flow metrics could not be registered", zap.Error(err))
		}
	}
	return metricsObserver{}
}

// metricsObserver is the flow.Observer that counts into the collectors.
type metricsObserver struct{}

func (metricsObserver) Event(name string) {
	if c, ok := deviceFlowMetrics.byEvent[name]; ok {
		c.Inc()
	}
}

func (metricsObserver) Upstream(op, outcome string, took time.Duration) {
	deviceFlowMetrics.upstreamDuration.WithLabelValues(op, outcome).Observe(took.Seconds())
	if outcome != "ok" {
		deviceFlowMetrics.upstreamErrors.WithLabelValues(op, outcome).Inc()
	}
}

var _ flow.Observer = metricsObserver{}

// registerStorageMetrics registers the stores' collectors (next to each
// storage module) with this config's registry; both stores' appear
// whichever one the config uses.
func registerStorageMetrics(ctx caddy.Context, logger *zap.Logger) {
	registry := ctx.GetMetricsRegistry()
	if registry == nil {
		return
	}
	for _, c := range append(badgerMetrics().collectors(), redisMetrics().collectors()...) {
		var already prometheus.AlreadyRegisteredError
		if err := registry.Register(c); err != nil && !errors.As(err, &already) {
			logger.Error("device flow metrics could not be registered", zap.Error(err))
		}
	}
}
