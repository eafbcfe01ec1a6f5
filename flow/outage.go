package flow

import (
	"cmp"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Log lines that every failed or refused request would write are
// throttled: a flood answered 503 or refused by a limit would otherwise
// write thousands a second. The metrics keep the exact counts.

// throttle lets a line through at most once per interval per message:
// the first as it happens, then the first after each interval, saying how
// many were held back since. It is timed by the wall clock: it is about
// the log, not the protocol's injectable clock.
type throttle struct {
	every time.Duration // 0: throttleEvery

	mu   sync.Mutex
	last map[string]time.Time // by message
	held map[string]int64
}

const throttleEvery = 10 * time.Second

// pass reports whether msg may be written at now and, if so, how many
// were held back since the last one written, and how long ago that was.
func (t *throttle) pass(msg string, now time.Time) (ok bool, held int64, since time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.last == nil {
		t.last, t.held = map[string]time.Time{}, map[string]int64{}
	}
	if last, seen := t.last[msg]; seen && now.Sub(last) < cmp.Or(t.every, throttleEvery) {
		t.held[msg]++
		return false, 0, 0
	}
	if last, seen := t.last[msg]; seen {
		since = now.Sub(last)
	}
	held = t.held[msg]
	t.last[msg], t.held[msg] = now, 0
	return true, held, since
}

// forget starts msg afresh: its next line passes.
func (t *throttle) forget(msg string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.last, msg)
	delete(t.held, msg)
}

// warn logs a warning of a refused request (a limit reached, a flood of
// forged callbacks) through the throttle.
func (t *throttle) warn(log *zap.Logger, msg string, fields ...zap.Field) {
	t.write(log.Warn, msg, fields...)
}

// error is warn at error level.
func (t *throttle) error(log *zap.Logger, msg string, fields ...zap.Field) {
	t.write(log.Error, msg, fields...)
}

func (t *throttle) write(logAt func(string, ...zap.Field), msg string, fields ...zap.Field) {
	if ok, held, _ := t.pass(msg, time.Now()); ok {
		logAt(msg, append(fields, zap.Int64("left_out_since_last_line", held))...)
	}
}

// outage keeps a failing dependency (the store, the upstream) to a few
// lines while it is down: the first failure as it happens, then one
// summary per interval (how many failed, the last error) through a
// throttle, and one line when a call succeeds again.
type outage struct {
	log      *zap.Logger
	what     string // "store", "upstream", "issuer": the start of every message
	summary  string // the summary's message
	throttle throttle

	down atomic.Bool // read by every successful call, without the lock

	mu       sync.Mutex
	since    time.Time // when it went down
	failures int64     // since it went down
	lastOp   string
	lastErr  error
}

const outageSummaryEvery = 10 * time.Second

func newOutage(log *zap.Logger, what string) *outage {
	return &outage{log: log, what: what, summary: "device flow " + what + " still failing", throttle: throttle{every: outageSummaryEvery}}
}

// failed notes one failure of op.
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
	o.lastOp, o.lastErr = op, err
	if !o.down.Load() {
		o.down.Store(true)
		o.since = now
		o.throttle.forget(o.summary)
		o.throttle.pass(o.summary, now) // the first line stands for the first summary
		if logFirst {
			o.log.Error("device flow "+o.what+" failed", zap.String("op", op), zap.Error(err))
		}
		return
	}
	if ok, held, since := o.throttle.pass(o.summary, now); ok {
		o.log.Error(o.summary,
			zap.Int64("failures", held+1), zap.Duration("since_last_line", since),
			zap.Duration("down_for", now.Sub(o.since)), zap.String("last_op", op), zap.Error(err))
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
	o.failures = 0
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
