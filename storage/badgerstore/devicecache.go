package badgerstore

import (
	"bytes"
	"errors"
	"hash/maphash"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// Polls of pending codes are the hot path: a device polls every few
// seconds for up to ten minutes, and each such poll changes nothing but
// LastPoll (and Retried). Writing that to Badger every time — a
// read-modify-write transaction, then the memtable flushes and compactions
// of a record rewritten every few seconds — was most of a poll's cost
// (~25 µs of CPU, against ~1 µs for a map).
//
// So the store keeps the devices it has recently updated in memory. An
// update that moves only LastPoll and Retried stays there ("dirty");
// anything else (status, tokens, a longer interval after slow_down,
// deletion) is written through at once. Dirty entries reach Badger when
// the store is closed. Entries leave the cache when their record is
// deleted or expires.
//
// This is exact because only this process has the database open (Badger
// locks its folder) and every device update goes through UpdateDevice,
// which holds the entry's shard lock: an entry is always the newest
// version of its record. What a crash (kill -9, power) loses is the last
// LastPoll of the codes in the cache: after a restart, their next poll is
// not checked against the interval, so it cannot earn slow_down. Nothing
// else is ever only in memory.

const (
	cacheShards = 64
	// 1024 × 64 = 65,536 devices polling at once, ~25 MiB when full.
	// Beyond that, the devices that are not cached are updated in Badger
	// directly, as if there were no cache: evicting at random would cost
	// each poll a read and, for the evicted entry, a write.
	cacheEntriesPerShard = 1024
	// cacheSweepEvery drops the entries of expired codes, so that their
	// memory goes back once traffic stops.
	cacheSweepEvery = 30 * time.Second
)

type deviceCache struct {
	shards   [cacheShards]cacheShard
	perShard int // entries per shard; cacheEntriesPerShard but in tests
}

// cacheShard's lock also serializes the updates of its devices.
type cacheShard struct {
	mu sync.Mutex
	m  map[string]*cachedDevice
}

type cachedDevice struct {
	d     flow.Device
	until uint64 // when Badger drops the record (Unix seconds), as its entry says
	dirty bool   // LastPoll and Retried are newer than in Badger
}

func (c *deviceCache) shard(id string) *cacheShard {
	return &c.shards[maphash.String(cacheSeed, id)%cacheShards]
}

var cacheSeed = maphash.MakeSeed()

// live mirrors Badger's expiry check (y.isExpired): gone at or after until.
func (e *cachedDevice) live(now uint64) bool { return e.until > now }

// cachedDevice returns the live record under id, from the cache or loaded
// into it; nil when there is none. full: the record is not cached and
// there is no room for it. sh must be id's shard, locked.
func (s *Store) cachedDevice(sh *cacheShard, id string) (e *cachedDevice, full bool, err error) {
	if e := sh.m[id]; e != nil {
		if e.live(uint64(time.Now().Unix())) {
			return e, false, nil
		}
		delete(sh.m, id) // Badger has dropped it as well
		return nil, false, nil
	}
	if len(sh.m) >= s.cache.perShard {
		return nil, true, nil
	}
	var d *flow.Device
	err = s.db.View(func(txn *badger.Txn) error {
		var err error
		d, err = getDevice(txn, id)
		return err
	})
	if errors.Is(err, flow.ErrNotFound) {
		return nil, false, nil // not cached: guesses must not fill the cache
	}
	if err != nil {
		return nil, false, err
	}
	e = &cachedDevice{d: *d, until: s.keepUntil(d.ExpiresAt)}
	if sh.m == nil {
		sh.m = make(map[string]*cachedDevice)
	}
	sh.m[id] = e
	return e, false, nil
}

// onlyPollMoved reports whether b differs from a in LastPoll and Retried
// at most (TestOnlyPollMovedSeesEveryField keeps it up to date with
// flow.Device).
func onlyPollMoved(a, b *flow.Device) bool {
	return a.ID == b.ID && a.UserCode == b.UserCode && a.ClientID == b.ClientID && a.Scope == b.Scope &&
		a.Status == b.Status && a.CreatedAt.Equal(b.CreatedAt) && a.ExpiresAt.Equal(b.ExpiresAt) &&
		a.Interval == b.Interval && bytes.Equal(a.SealKey, b.SealKey) && bytes.Equal(a.Sealed, b.Sealed) &&
		a.Reason == b.Reason
}

// updateCached is UpdateDevice: fn gets a copy of the newest record and
// its verdict is applied to the cache, and to Badger unless only the poll
// fields moved.
func (s *Store) updateCached(id string, fn func(*flow.Device) (flow.Verdict, error)) error {
	sh := s.cache.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e, full, err := s.cachedDevice(sh, id)
	if err != nil {
		return err
	}
	if full {
		return s.updateInBadger(id, fn)
	}
	if e == nil {
		_, err := fn(nil) // a verdict on nothing changes nothing
		return err
	}
	rec := e.d
	rec.SealKey, rec.Sealed = bytes.Clone(e.d.SealKey), bytes.Clone(e.d.Sealed)
	verdict, fnErr := fn(&rec)
	rec.ID = id // the record is stored under id, whatever fn did
	switch verdict {
	case flow.Save:
		if onlyPollMoved(&e.d, &rec) {
			e.dirty = e.dirty || !rec.LastPoll.Equal(e.d.LastPoll) || rec.Retried != e.d.Retried
			e.d = rec
			break
		}
		if err := s.update(func(txn *badger.Txn) error { return s.setDevice(txn, &rec) }); err != nil {
			return err
		}
		e.d, e.dirty, e.until = rec, false, s.keepUntil(rec.ExpiresAt)
	case flow.Delete:
		err := s.update(func(txn *badger.Txn) error {
			if err := txn.Delete([]byte(devicePrefix + id)); err != nil {
				return err
			}
			return txn.Delete([]byte(userCodePrefix + e.d.UserCode))
		})
		if err != nil {
			return err
		}
		delete(sh.m, id)
	}
	return fnErr
}

// updateInBadger is UpdateDevice without the cache: one read-modify-write
// transaction. The caller holds id's shard lock, so the record cannot
// enter the cache meanwhile.
func (s *Store) updateInBadger(id string, fn func(*flow.Device) (flow.Verdict, error)) error {
	var fnErr error
	err := s.update(func(txn *badger.Txn) error {
		fnErr = nil
		rec, err := getDevice(txn, id)
		if err != nil && !errors.Is(err, flow.ErrNotFound) {
			return err
		}
		verdict, err := fn(rec)
		fnErr = err
		switch {
		case verdict == flow.Save && rec != nil:
			rec.ID = id // the record is stored under id, whatever fn did
			return s.setDevice(txn, rec)
		case verdict == flow.Delete && rec != nil:
			if err := txn.Delete([]byte(devicePrefix + id)); err != nil {
				return err
			}
			return txn.Delete([]byte(userCodePrefix + rec.UserCode))
		}
		return nil
	})
	if err != nil {
		return err
	}
	return fnErr
}

// cachedCopy returns a copy of the cached record under id, if there is a
// live one: it is newer than Badger's.
func (s *Store) cachedCopy(id string) (*flow.Device, bool) {
	sh := s.cache.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.m[id]
	if e == nil || !e.live(uint64(time.Now().Unix())) {
		return nil, false
	}
	d := e.d
	d.SealKey, d.Sealed = bytes.Clone(e.d.SealKey), bytes.Clone(e.d.Sealed)
	return &d, true
}

// sweepCache drops the entries of expired records.
func (s *Store) sweepCache() {
	now := uint64(time.Now().Unix())
	for i := range s.cache.shards {
		sh := &s.cache.shards[i]
		sh.mu.Lock()
		for id, e := range sh.m {
			if !e.live(now) {
				delete(sh.m, id)
			}
		}
		sh.mu.Unlock()
	}
}

// flushCache writes every dirty entry to Badger (at Close).
func (s *Store) flushCache() error {
	now := uint64(time.Now().Unix())
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for i := range s.cache.shards {
		sh := &s.cache.shards[i]
		sh.mu.Lock()
		for _, e := range sh.m {
			if e.dirty && e.live(now) {
				if err := wb.SetEntry(entry(devicePrefix+e.d.ID, encodeDevice(&e.d), e.until)); err != nil {
					sh.mu.Unlock()
					return err
				}
				e.dirty = false
			}
		}
		sh.mu.Unlock()
	}
	return wb.Flush()
}
