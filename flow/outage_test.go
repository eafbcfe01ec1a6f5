package flow

import (
	"context"
	"fmt"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// A long outage writes its first failure, one summary per interval and a
// line when it ends, not a line per failed request.
func TestOutageLogsFirstSummaryAndRecovery(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	o := newOutage(zap.New(core), "store")
	down := fmt.Errorf("%w: connection refused", ErrUnavailable)

	o.succeeded() // nothing to end
	for range 10000 {
		o.failed("poll", down)
	}
	if got := logs.Len(); got != 1 || logs.All()[0].Message != "device flow store failed" {
		t.Fatalf("10,000 failures wrote %d lines: %v", got, logs.All())
	}
	// A summary once the interval has passed since the last line.
	o.throttle.mu.Lock()
	o.throttle.last[o.summary] = o.throttle.last[o.summary].Add(-outageSummaryEvery)
	o.throttle.mu.Unlock()
	o.failed("create device code", down)
	all := logs.TakeAll()
	summary := all[len(all)-1]
	if len(all) != 2 || summary.Message != "device flow store still failing" || summary.ContextMap()["failures"] != int64(10000) ||
		summary.ContextMap()["last_op"] != "create device code" {
		t.Fatalf("lines after the interval: %v", all)
	}
	o.succeeded()
	o.succeeded()
	all = logs.TakeAll()
	if len(all) != 1 || all[0].Message != "device flow store recovered" || all[0].ContextMap()["failures"] != int64(10001) {
		t.Fatalf("recovery: %v", all)
	}
	// The next outage starts again with its first failure.
	o.failed("poll", down)
	if all = logs.TakeAll(); len(all) != 1 || all[0].Message != "device flow store failed" {
		t.Fatalf("second outage: %v", all)
	}
	// A client that went away is no outage.
	o.succeeded()
	logs.TakeAll()
	o.failed("poll", fmt.Errorf("reading: %w", context.Canceled))
	if logs.Len() != 0 {
		t.Fatalf("a canceled request was logged as an outage: %v", logs.All())
	}
}
