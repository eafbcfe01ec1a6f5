package flow

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// outage keeps a failing dependency (the store, the upstream) from writing
// a log line per request while it is down: a flood answered 503 would
// otherwise write thousands a second. The first failure is logged as it
// happens, then one summary per interval (how many failed, the last
// error), and one line when a call succeeds again. The metrics keep the
// exact counts.
type outage struct {
	log   *zap.Logger
	what  string        // "store", "upstream", "issuer": the start of every message
	every time.Duration // between summaries

	down atomic.Bool // read by every successful call, without the lock

	mu          sync.Mutex
	since       time.Time // when it went down
	lastSummary time.Time
	failures    int64 // since it went down
	unlogged    int64 // since the last line
	lastOp      string
	lastErr     error
}

const outageSummaryEvery = 10 * time.Second

func newOutage(log *zap.Logger, what string) *outage {
	return &outage{log: log, what: what, every: outageSummaryEvery}
}

// failed notes one failure of op. Outages are timed by the wall clock:
// they are about the machine, not the protocol's injectable clock.
func (o *outage) failed(op string, err error) { o.fail(op, err, true) }

// failedLogged notes a failure that the caller has logged in its own words:
// if it starts an outage, the outage's first line is left out.
func (o *outage) failedLogged(op string, err error) { o.fail(op, err, false) }

func (o *outage) fail(op string, err error, logFirst bool) {
	if errors.Is(err, context.Canceled) {
		return // the client left; nothing is down
	}
	now := time.Now()
	o.mu.Lock()
	defer o.mu.Unlock()
	o.failures++
	o.unlogged++
	o.lastOp, o.lastErr = op, err
	switch {
	case !o.down.Load():
		o.down.Store(true)
		o.since, o.lastSummary, o.unlogged = now, now, 0
		if logFirst {
			o.log.Error("device flow "+o.what+" failed", zap.String("op", op), zap.Error(err))
		}
	case now.Sub(o.lastSummary) >= o.every:
		o.log.Error("device flow "+o.what+" still failing",
			zap.Int64("failures", o.unlogged), zap.Duration("since_last_line", now.Sub(o.lastSummary)),
			zap.Duration("down_for", now.Sub(o.since)), zap.String("last_op", op), zap.Error(err))
		o.lastSummary, o.unlogged = now, 0
	}
}

// succeeded notes a call that worked, ending an outage if there was one.
func (o *outage) succeeded() {
	if !o.down.Load() {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.down.Load() {
		return
	}
	o.down.Store(false)
	o.log.Info("device flow "+o.what+" recovered", zap.Int64("failures", o.failures),
		zap.Duration("down_for", time.Since(o.since)), zap.String("last_op", o.lastOp), zap.NamedError("last_error", o.lastErr))
	o.failures, o.unlogged = 0, 0
}

// watchedStore ends the store's outage at the first new record it takes
// (a device code or a login). Reads do not count, nor do counters or the
// secret: a store may answer those while it cannot write (Redis at
// maxmemory, a full disk), and an outage that ended at every read and
// began again at every write would log a line per request. Failures are
// reported by the callers, who know what they were doing (storeFailed).
type watchedStore struct {
	Store
	outage *outage
}

func (w watchedStore) wrote(err error) error {
	if err == nil {
		w.outage.succeeded()
	}
	return err
}

func (w watchedStore) CreateDevice(ctx context.Context, d *Device) error {
	return w.wrote(w.Store.CreateDevice(ctx, d))
}

func (w watchedStore) PutLogin(ctx context.Context, key string, login *Login) error {
	return w.wrote(w.Store.PutLogin(ctx, key, login))
}
