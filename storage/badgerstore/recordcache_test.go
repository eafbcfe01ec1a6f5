package badgerstore

import (
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
	"github.com/caddy-device-flow/caddy-device-flow/storage/storetest"
)

// The store's contract holds with the record cache off and with one so
// small that every update evicts.
func TestConformanceRecordCacheSizes(t *testing.T) {
	for name, n := range map[string]int{"off": -1, "one per stripe": 1} {
		t.Run(name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) flow.Store {
				s := open(t, Options{InMemory: true, CachedRecords: n})
				s.gate = newCacheGate(0) // cache from the first read (recordcachegate.go)
				return s
			})
		})
	}
}

// A poll of a record that is cached reads no Badger: the record, deleted
// behind the store's back, is still seen; with the cache off it is not.
// (Only the store writes its database, so in use the two never differ.)
func TestRecordCacheServesPolls(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cached int
		seen   bool
	}{
		{"cache on", 0, true},
		{"cache off", -1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t, Options{InMemory: true, CachedRecords: tc.cached})
			s.gate.open.Store(true) // as once devices poll again (recordcachegate.go)
			ctx := t.Context()
			dev := storetest.NewDevice(10 * time.Minute)
			if err := s.CreateDevice(ctx, dev); err != nil {
				t.Fatal(err)
			}
			poll := func() (seen bool) {
				err := s.UpdateDevice(ctx, dev.ID, func(d *flow.Device) (flow.Verdict, error) {
					seen = d != nil
					return flow.Keep, nil
				})
				if err != nil {
					t.Fatal(err)
				}
				return seen
			}
			if !poll() {
				t.Fatal("the new record is not found")
			}
			if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete(deviceKey(dev.ID)) }); err != nil {
				t.Fatal(err)
			}
			if got := poll(); got != tc.seen {
				t.Fatalf("after deleting it in Badger the record is seen: %v, want %v", got, tc.seen)
			}
		})
	}
}

// The cache holds at most its share per stripe, and gives the memory of
// expired records back.
func TestRecordCacheIsBounded(t *testing.T) {
	s := open(t, Options{InMemory: true, CachedRecords: 2 * stripes})
	s.gate = newCacheGate(0) // no gate: 20 devices a stripe would close it
	ctx := t.Context()
	for range 20 * stripes {
		dev := storetest.NewDevice(10 * time.Minute)
		if err := s.CreateDevice(ctx, dev); err != nil {
			t.Fatal(err)
		}
		if err := s.UpdateDevice(ctx, dev.ID, func(*flow.Device) (flow.Verdict, error) { return flow.Keep, nil }); err != nil {
			t.Fatal(err)
		}
	}
	total := 0
	for i := range s.stripes {
		if n := len(s.stripes[i].records); n > 2 {
			t.Fatalf("stripe %d caches %d records, want at most 2", i, n)
		}
		total += len(s.stripes[i].records)
	}
	if total == 0 {
		t.Fatal("nothing is cached")
	}
	for i := range s.stripes {
		s.stripes[i].sweepRecords(time.Now().Add(time.Hour), true) // all expired by then
		if s.stripes[i].records != nil {
			t.Fatalf("stripe %d keeps the records of expired codes", i)
		}
	}
}
