package badgerstore

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// The free-space guard. Badger writes its logs and tables through memory
// maps, and a write to a mapped page that the full filesystem cannot back
// is not an error but SIGBUS: the whole process dies, with every site
// Caddy serves. So the store watches the free space of its filesystem and
// stops before that: below MinFree it refuses new device codes (the
// device hears 503 with Retry-After), while the small writes of codes
// already issued (polls, approvals, deliveries) go on; below a quarter of
// MinFree it refuses every write, so that what is left is Badger's own
// (the flushes and compactions of what it holds). Both lift by themselves
// when space comes back.

// DefaultMinFree is the free space below which no new device codes are
// issued. It covers what Badger may still write after the guard trips:
// the write-ahead logs of its memtables, their flushes, and a compaction
// of a full level 0 into the level below, which writes the new tables
// before it deletes the old (docs/operations.md, "Disk and memory").
const DefaultMinFree = 64 << 20

// diskCheckEvery is how often the free space is looked at: a statfs call
// is cheap, and a second of a flood writes a few MiB at most.
const diskCheckEvery = time.Second

var (
	// ErrDiskLow is CreateDevice's error while the filesystem has less
	// than MinFree left.
	ErrDiskLow = fmt.Errorf("%w: badger: the store's filesystem is nearly full; no new device codes until there is more space", flow.ErrUnavailable)
	// ErrDiskFull is the error of every write while the filesystem has
	// less than a quarter of MinFree left.
	ErrDiskFull = fmt.Errorf("%w: badger: the store's filesystem is full; no writes until there is more space", flow.ErrUnavailable)
)

// DiskState is what a free-space check found.
type DiskState struct {
	Free uint64 // bytes available to unprivileged users
	Low  bool   // under MinFree: no new device codes
	Full bool   // under MinFree/4: no writes
}

// diskGuard holds the outcome of the last check, read by every write.
type diskGuard struct {
	dir     string
	minFree atomic.Uint64
	observe func(DiskState)
	log     *zap.Logger

	low, full atomic.Bool
	failing   atomic.Bool // the last check failed
}

func newDiskGuard(o Options) *diskGuard {
	g := &diskGuard{dir: o.Dir, observe: o.OnDiskCheck, log: o.Logger}
	g.minFree.Store(uint64(o.MinFree))
	if g.observe == nil {
		g.observe = func(DiskState) {}
	}
	return g
}

// check looks at the free space and logs each change of state.
func (g *diskGuard) check() {
	free, err := FreeSpace(g.dir)
	if err != nil {
		// The state stays as it was: an unknown is no reason to refuse
		// codes, nor to trust a full disk again.
		if !g.failing.Swap(true) {
			level := zap.WarnLevel
			if errors.Is(err, errors.ErrUnsupported) {
				level = zap.InfoLevel
			}
			g.log.Log(level, "cannot check the free space of the Badger folder's filesystem; new device codes are not held back when it runs low", zap.String("dir", g.dir), zap.Error(err))
		}
		return
	}
	g.failing.Store(false)
	minFree := g.minFree.Load()
	st := DiskState{Free: free, Low: free < minFree, Full: free < minFree/4}
	fields := []zap.Field{zap.String("dir", g.dir), zap.Uint64("free_bytes", free), zap.Uint64("min_free", minFree)}
	if was := g.full.Swap(st.Full); was != st.Full {
		if st.Full {
			g.log.Error("the Badger folder's filesystem is full: every write of the device flow is refused until there is more space", fields...)
		} else {
			g.log.Warn("the Badger folder's filesystem has room for small writes again", fields...)
		}
	}
	if was := g.low.Swap(st.Low); was != st.Low {
		if st.Low {
			g.log.Error("the Badger folder's filesystem is nearly full: new device codes are refused (503) until there is more space; codes already issued go on", fields...)
		} else {
			g.log.Info("the Badger folder's filesystem has room again: issuing device codes", fields...)
		}
	}
	g.observe(st)
}

// SetMinFree changes MinFree (a reload's new setting: the database stays
// open across reloads); the next check, within a second, applies it.
func (db *DB) SetMinFree(n int64) {
	if db.disk != nil && n > 0 {
		db.disk.minFree.Store(uint64(n))
	}
}

// DiskUsage is the disk the files under dir take, 0 when there is none.
// Badger's files are sparse until written, so their size would overstate it.
func DiskUsage(dir string) int64 {
	var total int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				total += allocated(info)
			}
		}
		return nil
	})
	return total
}
