package badgerstore

import (
	"bytes"
	"time"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// A pending poll reads its record (UpdateDevice); from Badger that is a
// search of the memtables and of every level of the tree, ~6 µs of CPU
// under load here, as much as the rest of the token endpoint's own work.
// So each stripe also keeps the records it recently read or wrote, as
// encoded (~100 bytes each), up to DefaultCachedRecords in all (~13 MiB
// when full): a fleet of that many devices polling at once never reads
// Badger while its codes are pending. Beyond it, entries are replaced at
// random and a poll reads Badger as before; far beyond it, the cache
// closes (recordcachegate.go).
//
// The cache is never newer than Badger, only a copy: every change to a
// record after its creation is written to Badger under the record's
// stripe lock, and the cached copy is replaced or dropped in the same
// critical section (UpdateDevice). A record that is not yet cached is
// read from Badger, so a new record (CreateDevice) needs no entry. An
// entry is taken only until Badger drops the record (until), and only for
// the key it was read under (the fingerprint alone could collide).
// Records of earlier versions' layout are not cached.

// DefaultCachedRecords is how many records the stripes cache in all.
const DefaultCachedRecords = 1 << 16

// cachedRecord is a record's key and encoded value, in one slice.
type cachedRecord struct {
	buf    []byte // key ‖ value
	keyLen int
	until  uint64 // when Badger drops the record (Unix seconds)
}

// cachedDevice decodes the live cached record under key, if any.
func (st *stripe) cachedDevice(fp uint64, key []byte, id string, now uint64, grants *grantTable) (*flow.Device, bool) {
	e, ok := st.records[fp]
	if !ok || e.until <= now || !bytes.Equal(e.buf[:e.keyLen], key) {
		return nil, false
	}
	d, err := decodeDevice(id, e.buf[e.keyLen:], grants)
	return d, err == nil
}

// cacheRecord keeps key's encoded value, replacing a random entry when
// the stripe's share is full.
func (st *stripe) cacheRecord(fp uint64, key, value []byte, until uint64) {
	if st.maxRecords == 0 {
		return
	}
	if _, ok := st.records[fp]; !ok && len(st.records) >= st.maxRecords {
		for victim := range st.records { // map order is random
			delete(st.records, victim)
			break
		}
	}
	if st.records == nil {
		st.records = make(map[uint64]cachedRecord, st.maxRecords)
	}
	buf := make([]byte, 0, len(key)+len(value))
	st.records[fp] = cachedRecord{buf: append(append(buf, key...), value...), keyLen: len(key), until: until}
}

// caching reports whether st (locked) may cache records now: while the
// gate is open (recordcachegate.go). While it is closed, st's cache is
// dropped.
func (s *Store) caching(st *stripe) bool {
	if s.gate.caching() {
		return true
	}
	st.records = nil
	return false
}

// sweepRecords drops the entries of records Badger has dropped, so that
// an idle server gives their memory back, or all of them while the cache
// is closed.
func (st *stripe) sweepRecords(now time.Time, caching bool) {
	if !caching {
		st.records = nil
		return
	}
	unix := uint64(now.Unix())
	for fp, e := range st.records {
		if e.until <= unix {
			delete(st.records, fp)
		}
	}
	if len(st.records) == 0 {
		st.records = nil
	}
}
