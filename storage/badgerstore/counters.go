package badgerstore

import (
	"context"
	"encoding/binary"
	"hash/maphash"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// Counters (the issue and guess limits) are hit by many requests at once,
// and a Badger transaction per Hit would conflict with its neighbours and
// retry. So they are kept in memory and written behind: a Hit adds one
// under its shard's lock and returns; every flushEvery the counters hit
// since are written to Badger in one batch, and again at Close. This is
// exact within the process, which is Badger's only user; a counter not in
// memory is read from Badger first, so counts carry over a restart. A
// crash loses the hits of the last flushEvery.

const flushEvery = 250 * time.Millisecond

type counters struct {
	seed   maphash.Seed
	shards [64]counterShard
}

type counterShard struct {
	mu    sync.Mutex
	m     map[string]*counter // by Badger key
	dirty []string            // keys hit since the last flush
}

type counter struct {
	value int64
	until uint64 // Unix seconds, as Badger keeps it: the window does not slide
	dirty bool
}

func (c *counters) shard(key string) *counterShard {
	return &c.shards[maphash.String(c.seed, key)%uint64(len(c.shards))]
}

// Tally: see flow.Store. Each step takes its counter's shard lock.
func (s *Store) Tally(_ context.Context, steps ...flow.Tally) ([]int64, error) {
	out := make([]int64, 0, len(steps))
	now := time.Now()
	for _, st := range steps {
		n, err := s.db.tally(string(s.ns.key(kindCounter, st.Key)), st.TTL, now)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
		if st.TTL > 0 && st.Limit > 0 && n > st.Limit {
			break
		}
	}
	return out, nil
}

// tally adds one to the counter under the Badger key k when ttl is above
// zero, and returns its value.
func (db *DB) tally(k string, ttl time.Duration, now time.Time) (int64, error) {
	sh := db.counters.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	c, err := db.counter(sh, k, now)
	if err != nil {
		return 0, err
	}
	if ttl <= 0 {
		return c.value, nil
	}
	if c.value == 0 { // a new window
		c.until = ceilUnix(now.Add(ttl))
	}
	c.value++
	if !c.dirty {
		c.dirty = true
		sh.dirty = append(sh.dirty, k)
	}
	return c.value, nil
}

// Counters: see flow.Store. The keys are those in Badger and those hit
// since the last write behind; each value is read as Tally reads it.
func (s *Store) Counters(ctx context.Context, prefix string, fn func(key string, value int64) bool) error {
	full := s.ns.key(kindCounter, prefix)
	skip := len(full) - len(prefix)
	keys := make(map[string]bool)
	err := s.db.view(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = full
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.ValidForPrefix(full); it.Next() {
			keys[string(it.Item().Key())] = true
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := range s.db.counters.shards {
		sh := &s.db.counters.shards[i]
		sh.mu.Lock()
		for k := range sh.m {
			if strings.HasPrefix(k, string(full)) {
				keys[k] = true
			}
		}
		sh.mu.Unlock()
	}
	now := time.Now()
	for k := range keys {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := s.db.tally(k, 0, now)
		if err != nil {
			return err
		}
		if n > 0 && !fn(k[skip:], n) {
			return nil
		}
	}
	return nil
}

// counter is the live counter under key, from memory or else from Badger;
// a counter of value 0 stands for none. sh is key's shard, locked.
func (db *DB) counter(sh *counterShard, key string, now time.Time) (*counter, error) {
	unix := uint64(now.Unix())
	if c := sh.m[key]; c != nil && c.until > unix {
		return c, nil
	}
	// Not in memory, or its window has passed (Badger drops it then too).
	// Known to be absent, it is looked for again a minute later at most:
	// only this process can create it, by Hit, which starts it then.
	c := &counter{until: unix + 60}
	err := db.bdb.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(key))
		if err != nil {
			return err
		}
		return item.Value(func(b []byte) error {
			if len(b) == 8 && item.ExpiresAt() > unix {
				c.value, c.until = int64(binary.BigEndian.Uint64(b)), item.ExpiresAt()
			}
			return nil
		})
	})
	if err != nil && err != badger.ErrKeyNotFound {
		return nil, unavailable(err)
	}
	if sh.m == nil {
		sh.m = make(map[string]*counter)
	}
	sh.m[key] = c
	return c, nil
}

// flushCounters writes the counters hit since the last flush; after a
// failure, every counter in memory is written again next time.
func (db *DB) flushCounters(now time.Time) error {
	unix := uint64(now.Unix())
	wb := db.bdb.NewWriteBatch()
	defer wb.Cancel()
	for i := range db.counters.shards {
		sh := &db.counters.shards[i]
		sh.mu.Lock()
		for _, key := range sh.dirty {
			if c := sh.m[key]; c != nil && c.dirty && c.until > unix {
				e := badger.NewEntry([]byte(key), binary.BigEndian.AppendUint64(nil, uint64(c.value)))
				e.ExpiresAt = c.until
				if err := wb.SetEntry(e); err != nil {
					sh.mu.Unlock()
					db.counters.markDirty()
					return unavailable(err)
				}
				c.dirty = false
			}
		}
		sh.dirty = sh.dirty[:0]
		sh.mu.Unlock()
	}
	if err := wb.Flush(); err != nil {
		db.counters.markDirty()
		return unavailable(err)
	}
	return nil
}

func (c *counters) markDirty() {
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		sh.dirty = sh.dirty[:0]
		for key, c := range sh.m {
			c.dirty = true
			sh.dirty = append(sh.dirty, key)
		}
		sh.mu.Unlock()
	}
}

// sweep drops the counters whose window has passed from memory (Badger
// drops them by itself).
func (c *counters) sweep(now time.Time) {
	unix := uint64(now.Unix())
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		for key, c := range sh.m {
			if c.until <= unix {
				delete(sh.m, key)
			}
		}
		sh.mu.Unlock()
	}
}
