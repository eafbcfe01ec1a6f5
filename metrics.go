package deviceflow

import (
	"errors"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
	"github.com/caddy-device-flow/caddy-device-flow/storage/badgerstore"
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

// flowEvents are every flow.Event* name; each appears (at 0) from the
// start, so rate() and alerts work before the first occurrence.
var flowEvents = []string{
	flow.EventCodeIssued,
	flow.EventApproved,
	flow.EventDenied,
	flow.EventExpired,
	flow.EventSlowDown,
	flow.EventDelivered,
	flow.EventGuessLimited,
	flow.EventWrongCode,
	flow.EventIssueLimited,
	flow.EventProximityWarned,
	flow.EventProximityRefused,
	flow.EventApproveLimited,
	flow.EventRefreshLimited,
	flow.EventIssueRefused,
	flow.EventCodeLocked,
	flow.EventRecordForged,
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
	m.byEvent = make(map[string]prometheus.Counter, len(flowEvents))
	for _, e := range flowEvents {
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

// The Badger store's free-space guard, per database folder (one process
// may hold several). Made once, like the collectors above.
var storageMetrics struct {
	once     sync.Once
	diskLow  *prometheus.GaugeVec
	diskFree *prometheus.GaugeVec
	// The Redis store's round trips, for its capacity
	// (docs/multi-instance.md).
	redisDuration prometheus.Histogram
	redisErrors   prometheus.Counter
}

func initStorageMetrics() {
	const ns, sub = "caddy", "device_flow"
	storageMetrics.diskLow = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: ns,
		Subsystem: sub,
		Name:      "badger_disk_low",
		Help:      "1 while the Badger folder's filesystem has less than min_free left and new device codes are refused, else 0.",
	}, []string{"dir"})
	storageMetrics.diskFree = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: ns,
		Subsystem: sub,
		Name:      "badger_disk_free_bytes",
		Help:      "Free space on the Badger folder's filesystem at the last check (every second).",
	}, []string{"dir"})
	storageMetrics.redisDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: ns,
		Subsystem: sub,
		Name:      "redis_duration_seconds",
		Help:      "Time taken by each round trip to Redis (a command or a script, sent and answered); a request of the flow makes one in the common case.",
		Buckets:   []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	})
	storageMetrics.redisErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: ns,
		Subsystem: sub,
		Name:      "redis_errors_total",
		Help:      "Round trips to Redis that failed (unreachable, timeout, CLUSTERDOWN, READONLY, OOM, ...); each makes a request of the flow answer 503.",
	})
}

// redisRoundTrip is the redisstore.Options.OnRoundTrip that feeds the
// Redis collectors.
func redisRoundTrip(took time.Duration, failed bool) {
	storageMetrics.redisDuration.Observe(took.Seconds())
	if failed {
		storageMetrics.redisErrors.Inc()
	}
}

// registerStorageMetrics registers the stores' collectors with this
// config's registry.
func registerStorageMetrics(ctx caddy.Context, logger *zap.Logger) {
	storageMetrics.once.Do(initStorageMetrics)
	registry := ctx.GetMetricsRegistry()
	if registry == nil {
		return
	}
	for _, c := range []prometheus.Collector{storageMetrics.diskLow, storageMetrics.diskFree, storageMetrics.redisDuration, storageMetrics.redisErrors} {
		var already prometheus.AlreadyRegisteredError
		if err := registry.Register(c); err != nil && !errors.As(err, &already) {
			logger.Error("device flow metrics could not be registered", zap.Error(err))
		}
	}
}

// diskMetrics is the badgerstore.Options.OnDiskCheck that feeds the gauges
// of the folder dir.
func diskMetrics(dir string) func(badgerstore.DiskState) {
	storageMetrics.once.Do(initStorageMetrics)
	low, free := storageMetrics.diskLow.WithLabelValues(dir), storageMetrics.diskFree.WithLabelValues(dir)
	return func(st badgerstore.DiskState) {
		free.Set(float64(st.Free))
		if st.Low {
			low.Set(1)
		} else {
			low.Set(0)
		}
	}
}

// forgetDiskMetrics drops the gauges of a database that is closed.
func forgetDiskMetrics(dir string) {
	storageMetrics.diskLow.DeleteLabelValues(dir)
	storageMetrics.diskFree.DeleteLabelValues(dir)
}
