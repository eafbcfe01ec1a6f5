// Package badgerstore keeps the device flow's state in an embedded Badger
// database: the default store, for one Caddy instance.
package badgerstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"go.uber.org/zap"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// DefaultGrace is how long a record is kept after it expired, so a late poll
// still gets expired_token instead of invalid_grant.
const DefaultGrace = 5 * time.Minute

// maxConflictRetries bounds the optimistic retries of one read-modify-write;
// reaching it means hundreds of writers on one key, which a device flow
// never has.
const maxConflictRetries = 1000

// Options configure Open.
type Options struct {
	// Dir is the database folder; empty with InMemory.
	Dir      string
	InMemory bool
	// Grace is how long records outlive their ExpiresAt (DefaultGrace if 0).
	Grace  time.Duration
	Logger *zap.Logger
	// GCInterval is how often the value log is garbage collected
	// (5 minutes if 0; negative turns it off).
	GCInterval time.Duration
	// QuietFlatten: once no write has come for this long, the whole tree
	// is compacted once, so that the disk of what expired meanwhile comes
	// back (default 30 minutes; negative: never). See flattenWhenQuiet.
	QuietFlatten time.Duration
	// NoPollClock turns the poll clock off (see pollclock.go), so that
	// every poll reads and writes Badger: for comparisons.
	NoPollClock bool
}

// Store is a flow.Store on Badger.
type Store struct {
	db    *badger.DB
	grace time.Duration
	log   *zap.Logger

	stopGC chan struct{}
	gcDone sync.WaitGroup

	counters counters // see counters.go

	// writes counts transactions that wrote, for flattenWhenQuiet.
	writes       atomic.Uint64
	quietFlatten time.Duration

	// stripes serialize device updates and hold the poll clock.
	stripes [stripes]stripe
	creates createQueue // see createbatch.go
	// legacy: records of an earlier version may be left (see keys.go).
	legacy atomic.Bool
	// codes filters the user codes that may be taken (usercodefilter.go).
	codes userCodeFilter
	// grants numbers (client_id, scope) pairs for the records (grants.go).
	grants *grantTable
	// noClock: Options.NoPollClock.
	noClock bool
}

var _ flow.Store = (*Store)(nil)

// Open opens (creating if needed) the database and starts its value-log
// garbage collection.
func Open(o Options) (*Store, error) {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Grace <= 0 {
		o.Grace = DefaultGrace
	}
	if o.GCInterval == 0 {
		o.GCInterval = 5 * time.Minute
	}
	if o.QuietFlatten == 0 {
		o.QuietFlatten = 30 * time.Minute
	}
	db, err := badger.Open(tunedOptions(o))
	if err != nil {
		return nil, err
	}
	s := &Store{db: db, grace: o.Grace, log: o.Logger, stopGC: make(chan struct{}), quietFlatten: o.QuietFlatten, noClock: o.NoPollClock}
	legacy, err := hasPrefix(db, legacyDevicePrefix, legacyUserCodePrefix)
	if err != nil {
		db.Close()
		return nil, err
	}
	s.legacy.Store(legacy)
	if s.grants, err = loadGrants(db); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.codes.build(db); err != nil {
		db.Close()
		return nil, err
	}
	if o.GCInterval > 0 && !o.InMemory {
		s.gcDone.Add(1)
		go s.collectGarbage(o.GCInterval)
	}
	s.gcDone.Add(2)
	go s.sweepEvery(clockSweepEvery)
	go s.flushCountersLoop()
	return s, nil
}

// tunedOptions sizes Badger for a web-server plugin rather than a database
// server. Every figure below was measured with bench/livecodes (10k and 1M
// live codes) and bench/run.sh; docs/performance.md has the numbers.
//
// Badger's defaults (64 MiB memtables ×5, a 256 MiB block cache, tables
// that double in size per level) cost hundreds of MiB before the first
// code. Most of what is left after shrinking those is table builders:
// a memtable flush or a compaction builds each table whole in memory in
// a buffer twice the configured table size, growing it as needed; Badger
// keeps up to 8 of those buffers pooled for reuse; and each table's index
// is built in a fresh 3 MiB flatbuffers builder (half of all bytes
// allocated). So:
//   - 2 MiB memtables, 3 of them: 6 MiB of skiplists. A flush writes a
//     memtable's ~1.5 MiB of data into the 2 MiB buffer sized for 1 MiB
//     tables. 4 MiB memtables made every pooled buffer grow to 14 MiB
//     (34 MiB pooled against 14 at 1M live codes; the peak RSS while
//     filling 1M codes 272-296 MiB against 232-259) for ~10% less CPU
//     per poll that reads Badger; 1 MiB ones filled ~15% slower for no
//     clear saving. (16 MiB ones saved ~11% more CPU, for ~3x the
//     anonymous memory.)
//   - up to 8 tables on level 0 before they are compacted into the next
//     (Badger: 5), and writes stall at 18 (15): 2 MiB memtables fill
//     level 0 twice as fast, and merging more of its tables at once
//     halved the issue scenario's p99 (~22-37 ms -> ~16-20) and lowered
//     its peak RSS by ~20 MiB (A/B, 6 runs each); a poll that reads
//     Badger checks more level-0 bloom filters (~+1 µs at 1M codes).
//   - 1 MiB tables on every level (TableSizeMultiplier 1): compaction
//     buffers stay 2 MiB however big the store grows; at 1M live codes
//     that is ~150 tables, which Badger handles without trouble. 4 MiB
//     tables (fewer index builders per byte, but 8 MiB buffers) raised
//     the peak RSS at 1M codes by ~50 MiB.
//   - no compression, so no block cache: records are ~60 bytes, half of
//     them random (the seal key, the key's hash), and with Snappy the
//     tables were 22% smaller, but Badger then needs a block cache for
//     the decompressed blocks, and with an 8 MiB one the peak RSS at 1M
//     codes rose by ~70 MiB (the cache's own bookkeeping and the garbage
//     of decompressing a 4 KiB block per read) and a poll cost ~25% more
//     CPU. Uncompressed blocks are read straight from the memory-mapped
//     tables (page cache, shared and reclaimable). The index cache only
//     serves encrypted tables, so it is off too.
//   - values up to 64 KiB stay in the LSM tree next to their keys (a
//     device record, even with sealed tokens, is a few KiB); Badger
//     requires the threshold below 15% of a memtable. The value log then
//     only sees larger values, so its files can be small.
//
// Together (with grants.go): at 1M live codes 60-130 MiB of anonymous
// memory at peak instead of ~540 MiB, the poll clock's ~29 MiB included
// (pollclock.go). What is left of it is mostly the Go heap's headroom
// (the GC lets the heap grow to twice what is live, and the index
// builders' garbage fills it); the file-backed part is the tables
// themselves (~109 bytes per live code, one entry each: keys.go).
func tunedOptions(o Options) badger.Options {
	opts := badger.DefaultOptions(o.Dir).
		WithInMemory(o.InMemory).
		WithLogger(zapLogger{o.Logger.Sugar()}).
		WithMemTableSize(2 << 20).
		WithNumMemtables(3).
		WithBaseTableSize(1 << 20).
		WithCompression(options.None).
		WithBlockCacheSize(0).
		WithIndexCacheSize(0).
		WithValueThreshold(64 << 10).
		WithValueLogFileSize(16 << 20).
		WithNumCompactors(2).
		WithNumLevelZeroTables(8).
		WithNumLevelZeroTablesStall(18).
		WithNumVersionsToKeep(1).
		WithMetricsEnabled(false).
		// Writes reach the memtable's write-ahead log through the page
		// cache, so a crash of the process (even kill -9) loses nothing;
		// only a power cut can cost the last writes, which for codes that
		// live ten minutes is not worth an fsync per request.
		WithSyncWrites(false)
	opts.TableSizeMultiplier = 1
	return opts
}

// Close stops the garbage collector and closes the database.
func (s *Store) Close() error {
	close(s.stopGC)
	s.gcDone.Wait()
	err := s.flushCounters(time.Now())
	for i := range s.stripes {
		st := &s.stripes[i]
		st.mu.Lock()
		st.polls.free()
		st.mu.Unlock()
	}
	return errors.Join(err, s.db.Close())
}

// sweepEvery drops the poll clock's expired entries, and looks whether records of an
// earlier version are left.
func (s *Store) sweepEvery(every time.Duration) {
	defer s.gcDone.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stopGC:
			return
		case now := <-t.C:
			s.sweep(now)
		}
	}
}

func (s *Store) sweep(now time.Time) {
	s.sweepClock(now)
	if s.legacy.Load() {
		if left, err := hasPrefix(s.db, legacyDevicePrefix, legacyUserCodePrefix); err == nil && !left {
			s.legacy.Store(false) // they have all expired or been deleted
		}
	}
}

// DB exposes the database for tests and tools.
func (s *Store) DB() *badger.DB { return s.db }

func (s *Store) collectGarbage(every time.Duration) {
	defer s.gcDone.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	var q quietness
	for {
		select {
		case <-s.stopGC:
			return
		case now := <-t.C:
			// Rewrite value-log files that are at least half garbage, as
			// many as there are. (Only values over 64 KiB go there.)
			for s.db.RunValueLogGC(0.5) == nil {
			}
			if q.due(s.writes.Load(), now, s.quietFlatten) {
				if err := s.db.Flatten(1); err != nil {
					s.log.Warn("compacting the idle database failed", zap.Error(err))
				}
			}
		}
	}
}

// quietness decides when to compact the whole tree: once, when nothing
// has been written for a while (QuietFlatten). Expired records leave the
// disk only when a compaction rewrites their table, and Badger compacts
// only as writes come in: after a burst of codes and then silence, their
// tables would stay as they are. With no write for longer than codes and
// counters live, everything written before has expired, and Flatten (~1 s
// for a million codes) gives the disk back. (Flatten leaves alone a tree
// that is all on one level, which only holds what fits in the first few
// tables: a few MiB.)
type quietness struct {
	writes    uint64
	since     time.Time // of the last write seen
	flattened bool
}

// due reports whether to flatten now, given the count of writes so far.
func (q *quietness) due(writes uint64, now time.Time, after time.Duration) bool {
	if writes != q.writes || q.since.IsZero() {
		q.writes, q.since, q.flattened = writes, now, false
		return false
	}
	if after < 0 || q.flattened || now.Sub(q.since) < after {
		return false
	}
	q.flattened = true
	return true
}

// keepUntil is when Badger may drop a record that expires at expiresAt, in
// the whole Unix seconds Badger counts in, rounded up so nothing is
// dropped early.
func (s *Store) keepUntil(expiresAt time.Time) uint64 {
	return ceilUnix(expiresAt.Add(s.grace))
}

func ceilUnix(t time.Time) uint64 {
	sec := t.Unix()
	if t.Nanosecond() > 0 {
		sec++
	}
	return uint64(sec)
}

// entry is a key-value pair that Badger drops after until.
func entry(key, value []byte, until uint64) *badger.Entry {
	e := badger.NewEntry(key, value)
	e.ExpiresAt = until
	return e
}

// update runs fn in a read-write transaction, retrying on conflicts.
func (s *Store) update(fn func(txn *badger.Txn) error) error {
	s.writes.Add(1)
	for range maxConflictRetries {
		err := s.db.Update(fn)
		if !errors.Is(err, badger.ErrConflict) {
			return err
		}
	}
	return fmt.Errorf("%w: too many write conflicts", flow.ErrUnavailable)
}

// getJSON reads key into v; flow.ErrNotFound when absent.
func getJSON(txn *badger.Txn, key string, v any) error {
	item, err := txn.Get([]byte(key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return flow.ErrNotFound
	}
	if err != nil {
		return err
	}
	return item.Value(func(b []byte) error { return json.Unmarshal(b, v) })
}

// PutLogin keeps the login until its ExpiresAt, as flow.Store asks and
// the Redis store does; the grace period is for device records only.
func (s *Store) PutLogin(_ context.Context, key string, login *flow.Login) error {
	b, err := json.Marshal(login)
	if err != nil {
		return err
	}
	return s.update(func(txn *badger.Txn) error {
		return txn.SetEntry(entry([]byte(loginPrefix+key), b, ceilUnix(login.ExpiresAt)))
	})
}

func (s *Store) TakeLogin(_ context.Context, key string) (*flow.Login, error) {
	var login flow.Login
	err := s.update(func(txn *badger.Txn) error {
		if err := getJSON(txn, loginPrefix+key, &login); err != nil {
			return err
		}
		return txn.Delete([]byte(loginPrefix + key))
	})
	if err != nil {
		return nil, err
	}
	return &login, nil
}

// Hit: see counters.go.
func (s *Store) Hit(_ context.Context, key string, ttl time.Duration) (int64, error) {
	return s.hit(key, ttl)
}

func (s *Store) Count(_ context.Context, key string) (int64, error) {
	return s.count(key)
}

func (s *Store) Secret(_ context.Context, name string, generate func() ([]byte, error)) ([]byte, error) {
	var secret []byte
	err := s.update(func(txn *badger.Txn) error {
		k := []byte(secretPrefix + name)
		item, err := txn.Get(k)
		if err == nil {
			secret, err = item.ValueCopy(nil)
			return err
		}
		if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		if secret, err = generate(); err != nil {
			return err
		}
		return txn.Set(k, secret)
	})
	return secret, err
}

// zapLogger routes Badger's logging to Caddy's: its chatty Infof becomes
// debug, so a normal log shows only what an operator may act on.
type zapLogger struct{ s *zap.SugaredLogger }

func (l zapLogger) Errorf(f string, a ...any)   { l.s.Errorf(f, a...) }
func (l zapLogger) Warningf(f string, a ...any) { l.s.Warnf(f, a...) }
func (l zapLogger) Infof(f string, a ...any)    { l.s.Debugf(f, a...) }
func (l zapLogger) Debugf(f string, a ...any)   { l.s.Debugf(f, a...) }
