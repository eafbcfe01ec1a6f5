package badgerstore

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// inBadgerCounter is the counter's value as Badger holds it (-1: none).
func inBadgerCounter(t *testing.T, s *Store, key string) int64 {
	t.Helper()
	n := int64(-1)
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(counterPrefix + key))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(b []byte) error {
			n = int64(binary.BigEndian.Uint64(b))
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Hits return at once and reach Badger within a flush interval, without
// the store being closed; reopening carries the count on.
func TestCountersAreWrittenBehind(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for want := int64(1); want <= 5; want++ {
		if n, err := s.Hit(t.Context(), "k", time.Hour); err != nil || n != want {
			t.Fatalf("hit %d: %d, %v", want, n, err)
		}
	}
	deadline := time.Now().Add(20 * flushCountersEvery)
	for inBadgerCounter(t, s, "k") != 5 {
		if time.Now().After(deadline) {
			t.Fatalf("Badger holds %d after %s, want 5", inBadgerCounter(t, s, "k"), 20*flushCountersEvery)
		}
		time.Sleep(flushCountersEvery / 5)
	}
	if _, err := s.Hit(t.Context(), "k", time.Hour); err != nil { // 6, written at Close
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, Options{Dir: dir})
	if n, err := s.Count(t.Context(), "k"); err != nil || n != 6 {
		t.Fatalf("after reopening: %d, %v; want 6", n, err)
	}
	if n, err := s.Hit(t.Context(), "k", time.Hour); err != nil || n != 7 {
		t.Fatalf("a hit after reopening: %d, %v; want 7", n, err)
	}
}

// The sweep drops the counters whose window has passed from memory.
func TestSweepDropsExpiredCounters(t *testing.T) {
	s := open(t, Options{InMemory: true})
	if _, err := s.Hit(t.Context(), "gone", time.Second); err != nil {
		t.Fatal(err)
	}
	s.sweepCounters(time.Now().Add(time.Minute))
	sh := s.counters.shard("gone")
	sh.mu.Lock()
	c := sh.m["gone"]
	sh.mu.Unlock()
	if c != nil {
		t.Fatalf("an expired counter is kept: %+v", c)
	}
}
