package deviceflow

import (
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// newMetrics returns the observer that feeds Prometheus. (Collectors come
// with the metrics work; until then events are only counted in logs.)
func newMetrics(_ caddy.Context, _ *zap.Logger) flow.Observer { return nopObserver{} }

type nopObserver struct{}

func (nopObserver) Event(string)                           {}
func (nopObserver) Upstream(string, string, time.Duration) {}
