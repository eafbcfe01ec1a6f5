// Package badgerstore keeps the device flow's state in an embedded Badger
// database: the default store, for one Caddy instance.
//
// One DB (one folder) serves any number of device_flow handlers, each
// through the Store of its own namespace (keys.go). Device records are
// encoded as in package record, the poll fields of pending polls are kept in
// memory (polls.go), and so are counters, written behind (counters.go).
package badgerstore

import (
	"cmp"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"go.uber.org/zap"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// DefaultGrace is how long a device record outlives its ExpiresAt, so that
// a late poll still gets expired_token rather than invalid_grant.
const DefaultGrace = 5 * time.Minute

const (
	defaultGCInterval = 5 * time.Minute
	// sweepEvery: how often the memory of expired polls and counters is
	// given back.
	sweepEvery = 30 * time.Second
	// closeTimeout bounds Close, so that Caddy can exit even when Badger
	// cannot flush (a full or failing disk).
	closeTimeout = 10 * time.Second
	// maxRetries bounds the retries of a transaction after a conflict,
	// each of which means that another writer of the same key won: there
	// are never that many.
	maxRetries = 100
)

// Options configure Open.
type Options struct {
	Dir      string // the database folder; unused with InMemory
	InMemory bool
	// Grace is how long device records outlive their ExpiresAt
	// (DefaultGrace when 0).
	Grace  time.Duration
	Logger *zap.Logger
	// GCInterval is how often the value log is garbage collected (5
	// minutes when 0; never when negative).
	GCInterval time.Duration
	// MinFree is the free space on Dir's filesystem below which new
	// device codes are refused (DefaultMinFree when 0); see disk.go.
	MinFree int64
	// OnDiskCheck, when set, is told the outcome of every free-space
	// check (for metrics). It is called from the background loop.
	OnDiskCheck func(DiskState)
}

// DB is an open Badger database and what its Stores share: the poll
// memory, the counters and the background work.
type DB struct {
	bdb      *badger.DB
	grace    time.Duration
	log      *zap.Logger
	polls    *polls
	counters counters
	disk     *diskGuard // nil in memory

	stop      chan struct{}
	loops     sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// Store is the flow.Store of one namespace of a DB.
type Store struct {
	db     *DB
	ns     namespace
	pollNS uint64 // its number in the poll memory
}

var _ flow.Store = (*Store)(nil)

// Open opens (creating if needed) the database and starts its background
// work: writing counters, sweeping what expired from memory, and garbage
// collecting the value log.
func Open(o Options) (*DB, error) {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Grace <= 0 {
		o.Grace = DefaultGrace
	}
	if o.GCInterval == 0 {
		o.GCInterval = defaultGCInterval
	}
	if o.MinFree <= 0 {
		o.MinFree = DefaultMinFree
	}
	bdb, err := badger.Open(badgerOptions(o))
	if err != nil {
		return nil, err
	}
	db := &DB{bdb: bdb, grace: o.Grace, log: o.Logger, polls: newPolls(), stop: make(chan struct{})}
	db.counters.seed = maphash.MakeSeed()
	if o.InMemory {
		o.GCInterval = -1 // there is no value log
	} else {
		db.disk = newDiskGuard(o)
		db.disk.check() // a store opened on a full disk refuses from the start
	}
	db.loops.Go(func() { db.background(o.GCInterval) })
	return db, nil
}

// badgerOptions size Badger for a plugin of a web server rather than for a
// database server: Badger's defaults take hundreds of MiB before the first
// code is stored.
func badgerOptions(o Options) badger.Options {
	opts := badger.DefaultOptions(o.Dir).
		WithInMemory(o.InMemory).
		WithLogger(zapLogger{o.Logger.Sugar()}).
		// Small memtables (not 5 of 64 MiB): records are small and
		// short-lived. 4 MiB, not 2: under a flood of new codes, 2 MiB
		// memtables flushed so often that writes waited behind level 0
		// (bench/run.sh: an issue's p99 1.7-2.1x respond's, 1.0-1.2x with
		// 4 MiB), for 50 MiB more peak RSS at 1M live codes (the arenas
		// are on the Go heap).
		WithMemTableSize(4 << 20).
		WithNumMemtables(3).
		// A table is built whole in a buffer twice its size, so small
		// tables on every level keep flushes and compactions small.
		WithBaseTableSize(1 << 20).
		// Small, partly random records gain little from compression, which
		// would need a block cache; uncompressed blocks are read straight
		// from the memory-mapped tables.
		WithCompression(options.None).
		WithBlockCacheSize(0).
		// Values stay next to their keys in the tree (Badger wants this
		// below 15% of a memtable); only larger ones go to the value log,
		// whose files can then be small.
		WithValueThreshold(64 << 10).
		WithValueLogFileSize(16 << 20).
		// Each compactor holds its own table buffers; two keep up.
		WithNumCompactors(2).
		// Small memtables fill level 0 quickly: merging more of its tables
		// at a time keeps writes from stalling behind compactions.
		WithNumLevelZeroTables(8).
		WithNumLevelZeroTablesStall(18).
		// Nobody reads Badger's expvar metrics here.
		WithMetricsEnabled(false)
	opts.TableSizeMultiplier = 1
	// Writes are not synced: a crash of the process loses nothing (the
	// write-ahead log is in the page cache), and a power cut may lose the
	// last codes issued, which are worth less than an fsync per request.
	return opts
}

// Store returns the store of one device_flow handler. The same namespace
// gives the same data (a handler reloaded with its config); different
// namespaces never see each other's.
func (db *DB) Store(namespace string) *Store {
	ns := newNamespace(namespace)
	return &Store{db: db, ns: ns, pollNS: db.polls.number(ns)}
}

// Badger is the database itself, for tests and tools.
func (db *DB) Badger() *badger.DB { return db.bdb }

// Close stops the background work, writes the counters and closes the
// database, giving up (and saying so) after closeTimeout.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		done := make(chan error, 1)
		go func() {
			close(db.stop)
			db.loops.Wait()
			var err error
			if !db.diskFull() {
				err = db.flushCounters(time.Now())
			}
			if !db.diskLow() { // the records it rewrites need room
				err = errors.Join(err, db.polls.save(db))
			}
			done <- errors.Join(err, db.bdb.Close())
		}()
		select {
		case db.closeErr = <-done:
		case <-time.After(closeTimeout):
			db.log.Error("the Badger database did not close in time; giving up on it (its write-ahead log has every write)", zap.Duration("waited", closeTimeout))
			db.closeErr = fmt.Errorf("badgerstore: the database did not close within %s", closeTimeout)
		}
	})
	return db.closeErr
}

func (db *DB) background(gcEvery time.Duration) {
	flush := time.NewTicker(flushEvery)
	defer flush.Stop()
	sweep := time.NewTicker(sweepEvery)
	defer sweep.Stop()
	var gc, disk <-chan time.Time
	if gcEvery > 0 {
		t := time.NewTicker(gcEvery)
		defer t.Stop()
		gc = t.C
	}
	if db.disk != nil {
		t := time.NewTicker(diskCheckEvery)
		defer t.Stop()
		disk = t.C
	}
	for {
		select {
		case <-db.stop:
			return
		case <-disk:
			db.disk.check()
		case now := <-flush.C:
			if db.diskFull() {
				continue // the counters wait in memory; the disk state is logged
			}
			if err := db.flushCounters(now); err != nil {
				db.log.Error("writing the limit counters failed; they stay in memory and are written again", zap.Error(err))
			}
		case now := <-sweep.C:
			db.sweep(now)
		case <-gc:
			// Rewrite the value-log files that are at least half garbage
			// (which needs room for the new file).
			for !db.diskFull() && db.bdb.RunValueLogGC(0.5) == nil {
			}
		}
	}
}

// sweep gives back the memory of polls and counters that have expired.
func (db *DB) sweep(now time.Time) {
	db.polls.sweep(now)
	db.counters.sweep(now)
}

// keepUntil is when Badger drops d's record: ExpiresAt plus the grace
// period, in the Unix seconds Badger counts.
func (db *DB) keepUntil(d *flow.Device) uint64 { return ceilUnix(d.ExpiresAt.Add(db.grace)) }

// ceilUnix rounds up, so that nothing is dropped early.
func ceilUnix(t time.Time) uint64 {
	sec := t.Unix()
	if t.Nanosecond() > 0 {
		sec++
	}
	return uint64(max(sec, 0))
}

// ---- transactions ----

// unavailable marks a failure of Badger as the store's.
func unavailable(err error) error {
	return fmt.Errorf("%w: badger: %w", flow.ErrUnavailable, err)
}

// update runs fn in a read-write transaction and commits it, again after
// a conflict. fn's own errors are returned as they are; fn wraps Badger's
// (get, set and del do).
func (db *DB) update(fn func(txn *badger.Txn) error) error {
	if db.bdb.IsClosed() {
		return unavailable(badger.ErrDBClosed)
	}
	for range maxRetries {
		txn := db.bdb.NewTransaction(true)
		if err := fn(txn); err != nil {
			txn.Discard()
			return err
		}
		err := txn.Commit()
		if err == nil {
			return nil
		}
		if !errors.Is(err, badger.ErrConflict) {
			return unavailable(err)
		}
	}
	return unavailable(fmt.Errorf("%d conflicts in a row", maxRetries))
}

// view runs fn in a read-only transaction.
func (db *DB) view(fn func(txn *badger.Txn) error) error {
	err := db.bdb.View(fn)
	if err != nil && !errors.Is(err, flow.ErrUnavailable) {
		return unavailable(err)
	}
	return err
}

// get reads the value under key; found is false when there is none.
func get(txn *badger.Txn, key []byte) (value []byte, found bool, err error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, false, nil
	}
	if err == nil {
		value, err = item.ValueCopy(nil)
	}
	if err != nil {
		return nil, false, unavailable(err)
	}
	return value, true, nil
}

// diskLow and diskFull report the free-space guard's state (disk.go).
func (db *DB) diskLow() bool  { return db.disk != nil && db.disk.low.Load() }
func (db *DB) diskFull() bool { return db.disk != nil && db.disk.full.Load() }

// set writes value under key until the Unix second until (0: for good).
func (db *DB) set(txn *badger.Txn, key, value []byte, until uint64) error {
	if db.diskFull() {
		return ErrDiskFull
	}
	e := badger.NewEntry(key, value)
	e.ExpiresAt = until
	if err := txn.SetEntry(e); err != nil {
		return unavailable(err)
	}
	return nil
}

// del deletes key, which writes a tombstone: it too needs room.
func (db *DB) del(txn *badger.Txn, key []byte) error {
	if db.diskFull() {
		return ErrDiskFull
	}
	if err := txn.Delete(key); err != nil {
		return unavailable(err)
	}
	return nil
}

// ---- logins and secrets ----

// PutLogin keeps the login until its ExpiresAt (the grace period is for
// device records only).
func (s *Store) PutLogin(_ context.Context, key string, login *flow.Login) error {
	b, err := json.Marshal(login)
	if err != nil {
		return err
	}
	return s.db.update(func(txn *badger.Txn) error {
		return s.db.set(txn, s.ns.key(kindLogin, key), b, ceilUnix(login.ExpiresAt))
	})
}

func (s *Store) TakeLogin(_ context.Context, key, state string) (*flow.Login, error) {
	k := s.ns.key(kindLogin, key)
	var login *flow.Login
	err := s.db.update(func(txn *badger.Txn) error {
		b, found, err := get(txn, k)
		if err != nil || !found {
			return cmp.Or(err, flow.ErrNotFound)
		}
		login = new(flow.Login)
		if err := json.Unmarshal(b, login); err != nil {
			return fmt.Errorf("%w: a corrupt login: %w", flow.ErrUnavailable, err)
		}
		if subtle.ConstantTimeCompare([]byte(login.State), []byte(state)) != 1 {
			return flow.ErrNotFound // not its state: left as it is
		}
		return s.db.del(txn, k)
	})
	if err != nil {
		return nil, err
	}
	return login, nil
}

func (s *Store) Secret(_ context.Context, name string, generate func() ([]byte, error)) ([]byte, error) {
	k := s.ns.key(kindSecret, name)
	var secret []byte
	err := s.db.update(func(txn *badger.Txn) error {
		var found bool
		var err error
		if secret, found, err = get(txn, k); err != nil || found {
			return err
		}
		if secret, err = generate(); err != nil {
			return err
		}
		return s.db.set(txn, k, secret, 0)
	})
	if err != nil {
		return nil, err
	}
	return secret, nil
}

// zapLogger routes Badger's logging to Caddy's: its chatty Infof becomes
// debug, so that a normal log shows only what an operator may act on.
type zapLogger struct{ s *zap.SugaredLogger }

func (l zapLogger) Errorf(f string, a ...any)   { l.s.Errorf(f, a...) }
func (l zapLogger) Warningf(f string, a ...any) { l.s.Warnf(f, a...) }
func (l zapLogger) Infof(f string, a ...any)    { l.s.Debugf(f, a...) }
func (l zapLogger) Debugf(f string, a ...any)   { l.s.Debugf(f, a...) }
