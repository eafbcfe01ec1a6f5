package badgerstore

import (
	"hash/maphash"
	"sync"

	"github.com/dgraph-io/badger/v4"
)

// Issuing a code checks that its user code is free: a Badger read of a key
// that almost never exists (user codes are drawn from 20^8), which still
// searches every memtable and level, ~5 µs of the ~60 µs a request to the
// device endpoint costs the server under load. So the store keeps a Bloom
// filter of every user code its records may hold, and reads Badger only
// when the filter says the code may be taken.
//
// The filter never says "free" for a taken code: it is built from a scan
// of the user codes' keys when the store opens, and every code a batch
// stores is added right after its transaction commits, before the next
// batch (batches run one at a time, see createbatch.go) can test it.
// Codes are never removed, so the filter fills up with codes that have
// expired; it is rebuilt from a fresh scan, in the background, once as
// many codes were added as it was built for. Codes stored while a rebuild
// scans are kept aside and added to the new filter before it is swapped
// in, so none is missed whatever the scan saw. Records of earlier
// versions' layout (keys.go) are not in it: while any is left, the store
// reads Badger as before.

const (
	filterBitsPerCode = 10 // with filterHashes: under 1% false "taken"
	filterHashes      = 7
	filterMinCodes    = 1 << 16 // the smallest filter holds this many
)

type userCodeFilter struct {
	mu         sync.Mutex
	bits       []uint64
	capacity   int // codes it was sized for
	added      int // codes added since it was built
	rebuilding bool
	aside      []string // codes added during a rebuild
	builds     int      // for tests
}

var filterSeed = maphash.MakeSeed()

// filterSized is an empty filter for at least codes user codes.
func filterSized(codes int) ([]uint64, int) {
	capacity := max(2*codes, filterMinCodes)
	return make([]uint64, (capacity*filterBitsPerCode+63)/64), capacity
}

func filterSet(bits []uint64, code string) {
	h := maphash.String(filterSeed, code)
	h1, h2 := h, h>>32|h<<32
	n := uint64(len(bits)) * 64
	for i := range uint64(filterHashes) {
		b := (h1 + i*h2) % n
		bits[b/64] |= 1 << (b % 64)
	}
}

func filterHas(bits []uint64, code string) bool {
	h := maphash.String(filterSeed, code)
	h1, h2 := h, h>>32|h<<32
	n := uint64(len(bits)) * 64
	for i := range uint64(filterHashes) {
		b := (h1 + i*h2) % n
		if bits[b/64]&(1<<(b%64)) == 0 {
			return false
		}
	}
	return true
}

// mayBeTaken reports whether a record may hold the code; false is exact.
func (f *userCodeFilter) mayBeTaken(code string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bits == nil || filterHas(f.bits, code)
}

// add records codes that were just stored; it reports whether the filter
// is due for a rebuild (the caller starts it).
func (f *userCodeFilter) add(codes []string) (rebuild bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.bits == nil {
		return false
	}
	for _, c := range codes {
		filterSet(f.bits, c)
	}
	f.added += len(codes)
	if f.rebuilding {
		f.aside = append(f.aside, codes...)
		return false
	}
	if f.added < f.capacity/2 {
		return false
	}
	f.rebuilding = true
	f.aside = nil
	return true
}

// build makes the filter from the user codes in the database. The caller
// has set rebuilding (or is Open, before any create).
func (f *userCodeFilter) build(db *badger.DB) error {
	var codes []string
	err := db.View(func(txn *badger.Txn) error {
		// Records keyed by their user code, and the user code entries
		// of the previous layout (keys.go).
		for _, prefix := range []byte{userCodeRecordPrefix, userCodeKeyPrefix} {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefix}}) // keys only
			for it.Rewind(); it.Valid(); it.Next() {
				codes = append(codes, string(it.Item().Key()[1:]))
			}
			it.Close()
		}
		return nil
	})
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rebuilding = false
	if err != nil {
		f.aside = nil
		return err // the old filter stays; it only ever has more codes
	}
	codes = append(codes, f.aside...)
	f.aside = nil
	bits, capacity := filterSized(len(codes))
	for _, c := range codes {
		filterSet(bits, c)
	}
	f.bits, f.capacity, f.added = bits, capacity, 0
	f.builds++
	return nil
}
