package badgerstore

import (
	"hash/maphash"
	"sync"
	"time"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// Polls of pending codes are the hot path: a device polls every few
// seconds for up to ten minutes, and such a poll changes nothing but
// LastPoll (and Retried). Writing that to Badger every time (a
// read-modify-write transaction, then the memtable flushes and compactions
// of a record rewritten every few seconds) was most of a poll's cost, and
// a cost that grew with the tree. Keeping whole records in memory instead,
// dirty until written back, cost ~400 bytes per polling device, so only a
// few could be held. (recordcache.go keeps encoded copies of recently used
// records to save the read; they are never newer than Badger.)
//
// So a pending poll never writes to Badger: the poll clock keeps, per
// device, only its last poll time and Retried, 16 bytes keyed by a 64-bit
// fingerprint of the ID, and UpdateDevice lays them over the record read
// from Badger before fn sees it. Anything else fn changes (status, tokens,
// the seal key, a longer interval after slow_down, deletion) is written to
// Badger at once, poll fields included, as before.
//
// The clock is bounded: each of its stripes has two fixed-size tables,
// generations. Writes go to the young one, reads look in the young and
// then the old one; when the young one is full, it becomes the old one and
// the old one, cleared, the young one: what only the old one held is
// forgotten. A generation older than clockGenerationAge is dropped the
// same way by the sweeper, so that an idle server gives the memory back.
//
// Forgetting only ever favours the device. What is forgotten is replaced
// by what Badger holds: the poll fields as of the last write-through, so
// an older LastPoll (or none) and the Retried of then. The flow (poll in
// flow/token_endpoint.go) calls a poll early, and answers slow_down, only
// when it comes less than Interval (less a little slack) after LastPoll;
// it forgives an early poll once, when Retried is unset. Between two
// write-throughs Interval does not change, and every poll kept only here
// was either on time (LastPoll moves on by at least Interval less the
// slack) or a forgiven retry (LastPoll stays, Retried is set). So if the
// newest LastPoll is later than Badger's, it is later by at least the
// interval, and any poll early against Badger's is earlier still against
// the newest: a poll that the stale fields call early, the true ones do
// too, and forgetting can only turn a slow_down into a pending. If the
// LastPoll is the same, only Retried can differ, and it was only ever set
// meanwhile: the stale value forgives where the true one would not. This
// is what a restart does to every code already (the clock is not written
// to disk; a crash lost the last poll times before too).
//
// A fingerprint collision between two live devices could lay one device's
// poll time over another's; with a random seed per process that takes
// ~2^32 devices polling at once, and the overlay is further only taken
// when it is not older than the record's own LastPoll.
//
// This is exact because only this process has the database open (Badger
// locks its folder) and every device update holds its stripe's lock from
// reading the record to writing it (see UpdateDevice).

const (
	// stripes of the per-device lock and of the clock; a power of two.
	stripes = 256
	// DefaultPollClock is how many slots each generation of the clock has
	// in all: 2^18, 4 MiB a generation, 8 MiB when both are full. A
	// table takes up to 3/4 of its slots, so the clock remembers the
	// last 200,000 to 390,000 devices that polled: every device of a
	// fleet polling every 5 s at up to 40,000 polls a second. Beyond, a
	// poll time can be forgotten, which only spares a device a slow_down.
	// (2^19 cost 8 MiB more,
	// ~12 MiB at the garbage collector's peak, of a 256 MiB budget for a
	// million live codes.)
	DefaultPollClock = 1 << 18
	// clockGenerationAge: the sweeper drops a generation this old, as no
	// code (10 minutes by default) outlives it by much.
	clockGenerationAge = 15 * time.Minute
	// clockSweepEvery is how often the sweeper looks.
	clockSweepEvery = 30 * time.Second
)

var clockSeed = maphash.MakeSeed()

// fingerprint identifies a device in the clock and picks its stripe.
func fingerprint(id string) uint64 {
	fp := maphash.String(clockSeed, id)
	if fp == 0 {
		fp = 1 // 0 marks an empty slot
	}
	return fp
}

// stripe serializes the updates of its devices and holds their clock.
type stripe struct {
	mu         sync.Mutex
	young, old clockTable
	youngSince time.Time
	slots      int // per table; 0: no clock
	// records caches recently used records (recordcache.go), at most
	// maxRecords of them.
	records    map[uint64]cachedRecord
	maxRecords int
}

func (s *Store) stripe(fp uint64) *stripe { return &s.stripes[fp>>56%stripes] }

// clockTable is an open-addressing hash table (linear probing) from
// fingerprint to clock value: 16 bytes a slot, allocated on first use
// and reused across generations.
type clockTable struct {
	keys []uint64
	vals []uint64
	n    int
}

// clock values: the Unix nanoseconds of LastPoll shifted left by one,
// Retried in the low bit; 0 (noOverlay) says that Badger's record is
// the newest. Times from 1970 to 2116 fit.
const noOverlay = 0

func clockValue(lastPoll time.Time, retried bool) (uint64, bool) {
	if lastPoll.IsZero() || lastPoll.Unix() <= 0 || lastPoll.Unix() >= compactCreated/int64(time.Second) {
		return 0, false
	}
	v := uint64(lastPoll.UnixNano()) << 1
	if retried {
		v |= 1
	}
	return v, true
}

func (t *clockTable) find(fp uint64) (slot int, found bool) {
	mask := len(t.keys) - 1
	for i := int(fp) & mask; ; i = (i + 1) & mask {
		switch t.keys[i] {
		case fp:
			return i, true
		case 0:
			return i, false
		}
	}
}

func (t *clockTable) get(fp uint64) (uint64, bool) {
	if t.n == 0 {
		return 0, false
	}
	i, ok := t.find(fp)
	return t.vals[i], ok
}

// full: another key would pass 3/4 of the slots.
func (t *clockTable) full() bool { return (t.n+1)*4 > len(t.keys)*3 }

func (t *clockTable) clear() {
	clear(t.keys)
	t.n = 0
}

// get returns fp's clock value, young generation first.
func (st *stripe) get(fp uint64) (uint64, bool) {
	if v, ok := st.young.get(fp); ok {
		return v, true
	}
	return st.old.get(fp)
}

// set records fp's clock value in the young generation, rotating the
// generations when it is full.
func (st *stripe) set(fp, v uint64, now time.Time) {
	switch {
	case st.slots == 0:
		return
	case len(st.young.keys) == 0:
		st.young = newClockTable(st.slots)
		st.youngSince = now
	case st.young.n > 0:
		if i, ok := st.young.find(fp); ok {
			st.young.vals[i] = v
			return
		}
		if st.young.full() {
			st.rotate(now)
		}
	}
	i, _ := st.young.find(fp)
	st.young.keys[i], st.young.vals[i] = fp, v
	st.young.n++
}

func newClockTable(slots int) clockTable {
	return clockTable{keys: make([]uint64, slots), vals: make([]uint64, slots)}
}

// rotate makes the young generation the old one, forgetting the old
// one's entries, and starts an empty young one in the old one's memory.
func (st *stripe) rotate(now time.Time) {
	st.young, st.old = st.old, st.young
	if len(st.young.keys) == 0 {
		st.young = newClockTable(st.slots)
	}
	st.young.clear()
	st.youngSince = now
}

// forget makes Badger's record the newest for fp again (after it was
// written through), if the clock holds anything for fp.
func (st *stripe) forget(fp uint64, now time.Time) {
	if _, ok := st.get(fp); ok {
		st.set(fp, noOverlay, now)
	}
}

// age rotates the generations when the young one is older than
// clockGenerationAge, without memory for the new young one: with traffic
// the young one fills up long before that, so this only happens on an
// idle server, which this way gives the clock's memory back within two
// such ages.
func (st *stripe) age(now time.Time) {
	if len(st.young.keys) == 0 && len(st.old.keys) == 0 || now.Sub(st.youngSince) < clockGenerationAge {
		return
	}
	st.old, st.young = st.young, clockTable{}
	st.youngSince = now
}

// overlay lays the clock's poll fields for fp over d, if the clock has
// newer ones.
func (st *stripe) overlay(fp uint64, d *flow.Device) {
	v, ok := st.get(fp)
	if !ok || v == noOverlay {
		return
	}
	at := time.Unix(0, int64(v>>1))
	if at.Before(d.LastPoll) || at.Before(d.CreatedAt) {
		return // not this record's (a collision, or an ID used again)
	}
	d.LastPoll, d.Retried = at, v&1 != 0
}

// sweepClock ages every stripe's clock.
func (s *Store) sweepClock(now time.Time) {
	for i := range s.stripes {
		st := &s.stripes[i]
		st.mu.Lock()
		st.age(now)
		st.sweepRecords(now, s.gate.caching())
		st.mu.Unlock()
	}
}
