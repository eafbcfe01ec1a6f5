package flow

import (
	"sync"
	"time"

	"go.uber.org/zap"
)

// repeated keeps a warning that every refused request would write (a
// limit reached, a flood of forged callbacks) to one line per interval:
// the first as it happens, then at most one per repeatedEvery saying how
// many were left out since. The metrics count every one.
type repeated struct {
	mu      sync.Mutex
	last    map[string]time.Time // by message
	skipped map[string]int64
}

const repeatedEvery = 10 * time.Second

// warn logs msg unless it was logged less than repeatedEvery ago (wall
// clock: it is about the log, not the protocol).
func (r *repeated) warn(log *zap.Logger, msg string, fields ...zap.Field) {
	r.write(log.Warn, msg, fields...)
}

// error is warn at error level.
func (r *repeated) error(log *zap.Logger, msg string, fields ...zap.Field) {
	r.write(log.Error, msg, fields...)
}

func (r *repeated) write(logAt func(string, ...zap.Field), msg string, fields ...zap.Field) {
	now := time.Now()
	r.mu.Lock()
	if r.last == nil {
		r.last, r.skipped = map[string]time.Time{}, map[string]int64{}
	}
	if now.Sub(r.last[msg]) < repeatedEvery {
		r.skipped[msg]++
		r.mu.Unlock()
		return
	}
	skipped := r.skipped[msg]
	r.last[msg], r.skipped[msg] = now, 0
	r.mu.Unlock()
	logAt(msg, append(fields, zap.Int64("left_out_since_last_line", skipped))...)
}
