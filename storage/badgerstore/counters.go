package badgerstore

import (
	"encoding/binary"
	"errors"
	"hash/maphash"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"
)

// Counters (the guess and issue limits) are hit by many requests at once:
// the server-wide ones by every request they count, a per-IP one by every
// request from a busy NAT. A Badger transaction per Hit conflicted and
// retried (Badger's transactions are optimistic); one per batch of Hits
// still made every request of a batch wait for its commit, one batch
// after another: with limits on, issuing codes ran at ~0.7 of the rate
// with limits off, with a p99 three times the baseline's.
//
// So counters are kept in memory and written behind: a Hit adds one under
// its counter's lock and returns at once; every flushCountersEvery, the
// counters hit since are written to Badger in one batch, and at Close.
// This is exact within the process, because only this process opens the
// database (Badger locks its folder); a counter not in memory is read
// from Badger first, so counts carry over a restart. What a crash (kill
// -9, power) loses is the Hits of the last flushCountersEvery: a guesser
// who can crash the server gets that many guesses more.

// flushCountersEvery is how often counters hit since are written.
const flushCountersEvery = 250 * time.Millisecond

type counters struct {
	shards [64]counterShard
}

type counterShard struct {
	mu    sync.Mutex
	m     map[string]*counter
	dirty []string // keys of the counters hit since the last flush
}

type counter struct {
	value     int64
	expiresAt uint64 // Unix seconds, as Badger keeps it; the window does not slide
	dirty     bool   // hit since the last flush
}

var counterSeed = maphash.MakeSeed()

func (c *counters) shard(key string) *counterShard {
	return &c.shards[maphash.String(counterSeed, key)%uint64(len(c.shards))]
}

// hit adds one to the counter key, expiring ttl after its first hit.
func (s *Store) hit(key string, ttl time.Duration) (int64, error) {
	sh := s.counters.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	now := time.Now()
	c, err := s.counterIn(sh, key, now)
	if err != nil {
		return 0, err
	}
	switch {
	case c == nil:
		c = &counter{}
		if sh.m == nil {
			sh.m = make(map[string]*counter)
		}
		sh.m[key] = c
		fallthrough
	case c.value == 0: // new, or known to be absent (see counterIn)
		c.expiresAt = ceilUnix(now.Add(ttl))
	}
	c.value++
	if !c.dirty {
		c.dirty = true
		sh.dirty = append(sh.dirty, key)
	}
	return c.value, nil
}

// count is the counter's value, 0 when there is none.
func (s *Store) count(key string) (int64, error) {
	sh := s.counters.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	c, err := s.counterIn(sh, key, time.Now())
	if c == nil || err != nil {
		return 0, err
	}
	return c.value, nil
}

// counterIn is the live counter under key, from memory or else loaded
// from Badger into it; nil when there is none. sh is key's shard, locked.
func (s *Store) counterIn(sh *counterShard, key string, now time.Time) (*counter, error) {
	unix := uint64(now.Unix())
	if c := sh.m[key]; c != nil {
		if c.expiresAt > unix {
			return c, nil
		}
		delete(sh.m, key) // Badger drops it at the same time
		return nil, nil
	}
	var c *counter
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(counterPrefix + key))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(b []byte) error {
			if len(b) == 8 && item.ExpiresAt() > unix {
				c = &counter{value: int64(binary.BigEndian.Uint64(b)), expiresAt: item.ExpiresAt()}
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	if c == nil {
		// Known to be absent: only this process can create it, through
		// hit, which then starts it (counters are read, by Count, far
		// more often than they are created). Looked for again in a minute.
		c = &counter{expiresAt: unix + 60}
	}
	if sh.m == nil {
		sh.m = make(map[string]*counter)
	}
	sh.m[key] = c
	return c, nil
}

// flushCounters writes the counters hit since the last flush.
func (s *Store) flushCounters(now time.Time) error {
	unix := uint64(now.Unix())
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	wrote := false
	for i := range s.counters.shards {
		sh := &s.counters.shards[i]
		sh.mu.Lock()
		for _, key := range sh.dirty {
			c := sh.m[key]
			if c == nil || !c.dirty || c.expiresAt <= unix {
				continue
			}
			value := binary.BigEndian.AppendUint64(nil, uint64(c.value))
			if err := wb.SetEntry(entry([]byte(counterPrefix+key), value, c.expiresAt)); err != nil {
				sh.mu.Unlock()
				return err
			}
			c.dirty, wrote = false, true
		}
		sh.dirty = sh.dirty[:0]
		sh.mu.Unlock()
	}
	if !wrote {
		return nil
	}
	s.writes.Add(1)
	return wb.Flush()
}

// Sync writes the limit counters now, rather than within
// flushCountersEvery (as before a backup of the folder).
func (s *Store) Sync() error { return s.flushCounters(time.Now()) }

// sweepCounters drops the counters whose window has passed from memory
// (Badger drops them by itself).
func (s *Store) sweepCounters(now time.Time) {
	unix := uint64(now.Unix())
	for i := range s.counters.shards {
		sh := &s.counters.shards[i]
		sh.mu.Lock()
		for key, c := range sh.m {
			if c.expiresAt <= unix {
				delete(sh.m, key)
			}
		}
		sh.mu.Unlock()
	}
}

// flushCountersLoop flushes every flushCountersEvery until the store
// closes.
func (s *Store) flushCountersLoop() {
	defer s.gcDone.Done()
	t := time.NewTicker(flushCountersEvery)
	defer t.Stop()
	for tick := 1; ; tick++ {
		select {
		case <-s.stopGC:
			return
		case now := <-t.C:
			if tick%int(30*time.Second/flushCountersEvery) == 0 {
				s.sweepCounters(now)
			}
			if err := s.flushCounters(now); err != nil {
				s.log.Error("writing the limit counters failed; they are kept in memory and written again", zap.Error(err))
				s.markCountersDirty()
			}
		}
	}
}

// markCountersDirty makes every counter in memory due for writing again,
// after a failed flush.
func (s *Store) markCountersDirty() {
	for i := range s.counters.shards {
		sh := &s.counters.shards[i]
		sh.mu.Lock()
		sh.dirty = sh.dirty[:0]
		for key, c := range sh.m {
			c.dirty = true
			sh.dirty = append(sh.dirty, key)
		}
		sh.mu.Unlock()
	}
}
