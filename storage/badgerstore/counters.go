package badgerstore

import (
	"encoding/binary"
	"errors"
	"hash/maphash"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Counters (the guess and issue limits) are hit by many requests at once:
// the server-wide ones by every request they count, a per-IP one by every
// request from a busy NAT. Badger's transactions are optimistic, so
// concurrent Hits of one counter all read the same value, all but one fail
// to commit and retry, and the work grows with the square of the
// concurrency: with limits on, issuing codes ran at a fifth of the rate.
//
// So the Hits of one counter are batched in-process: the first Hit of a
// batch waits for the counter's lock (held while the previous batch
// commits), the Hits that arrive meanwhile join its batch, and one
// transaction adds them all. Each Hit still gets its own value (the batch
// takes consecutive ones) and returns once it is stored. This is exact
// because only this process opens the database (Badger locks its folder).

type hitBatches struct {
	mu      sync.Mutex
	pending map[string]*hitBatch // the open batch of each counter
	locks   [64]sync.Mutex       // one writer per counter (striped)
}

type hitBatch struct {
	n     int64 // Hits in the batch
	done  chan struct{}
	first int64 // the value of the batch's first Hit, once stored
	err   error
}

var counterSeed = maphash.MakeSeed()

// hit adds one to the counter key, expiring ttl after its first hit.
func (s *Store) hit(key string, ttl time.Duration) (int64, error) {
	q := &s.hits
	q.mu.Lock()
	if b := q.pending[key]; b != nil {
		mine := b.n
		b.n++
		q.mu.Unlock()
		<-b.done
		return b.first + mine, b.err
	}
	b := &hitBatch{n: 1, done: make(chan struct{})}
	if q.pending == nil {
		q.pending = make(map[string]*hitBatch)
	}
	q.pending[key] = b
	q.mu.Unlock()

	lock := &q.locks[maphash.String(counterSeed, key)%uint64(len(q.locks))]
	lock.Lock()
	q.mu.Lock()
	delete(q.pending, key) // later Hits start the next batch
	n := b.n
	q.mu.Unlock()
	b.first, b.err = s.addToCounter(key, n, ttl)
	lock.Unlock()
	close(b.done)
	return b.first, b.err
}

// addToCounter adds n to the counter and returns the value after the
// first of the n. A counter's value is 8 bytes, big-endian; its TTL is
// set by the first hit and carried over by later ones, so the window does
// not slide.
func (s *Store) addToCounter(key string, n int64, ttl time.Duration) (first int64, err error) {
	err = s.update(func(txn *badger.Txn) error {
		k := []byte(counterPrefix + key)
		var old int64
		expiresAt := ceilUnix(time.Now().Add(ttl))
		item, err := txn.Get(k)
		switch {
		case err == nil:
			if err := item.Value(func(b []byte) error {
				if len(b) == 8 {
					old = int64(binary.BigEndian.Uint64(b))
				}
				return nil
			}); err != nil {
				return err
			}
			if item.ExpiresAt() != 0 {
				expiresAt = item.ExpiresAt()
			}
		case !errors.Is(err, badger.ErrKeyNotFound):
			return err
		}
		first = old + 1
		return txn.SetEntry(entry(k, binary.BigEndian.AppendUint64(nil, uint64(old+n)), expiresAt))
	})
	return first, err
}
