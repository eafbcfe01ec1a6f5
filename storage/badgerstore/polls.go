package badgerstore

import (
	"hash/maphash"
	"slices"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
	"github.com/caddy-device-flow/caddy-device-flow/storage/record"
)

// Most requests a device flow serves are pending polls, which change
// nothing but LastPoll (and Retried). Writing the record back to Badger
// for each costs several times what reading it does, and rewrites every
// live record every few seconds through the memtables and compactions.
// So the poll memory keeps those two fields in memory: a Save that
// changes nothing else only updates it, and UpdateDevice and
// DeviceByUserCode lay it over the record read from Badger before anyone
// sees it. Any other Save writes the whole record, poll fields included,
// and forgets the entry; so do Delete, CreateDevice (a new record never
// inherits an old one's polls), and finding no record (it expired).
//
// This is exact because this process is Badger's only user (it locks its
// folder) and a record is only read or written with its shard's lock
// held, which the poll memory shares, across all the Stores of one DB:
// two handlers of one namespace (a config reload) see the same entries.
//
// Close writes the memory into the records (save), so a stop, a restart
// or an upgrade forgets nothing. Only a crash (kill -9, power) does, as it
// loses the counters' last flush: each device's last poll is then the one
// Badger holds, from the last write of its record. That time is never
// later than the true one, so the first poll after a crash may miss a
// slow_down, never earn a wrong one. The intervals that slow_down grew
// are written at once, and kept.
//
// An entry is 16 bytes without pointers, so that a million polled codes
// take a few tens of MiB that the garbage collector never scans: its key
// is the record's namespace and user code packed into 64 bits (pollKey),
// its value the poll fields, and the entries are grouped by the minute
// their records leave Badger, so that a sweep drops a whole group. A
// record whose key does not pack (a user code over 10 characters, or
// more than 4095 namespaces) has its polls written to Badger.

const (
	pollShards    = 256
	namespaceBits = 12 // namespaces with a poll memory; the user code gets the other 52 bits
)

type polls struct {
	seed   maphash.Seed
	shards [pollShards]pollShard

	mu         sync.Mutex
	namespaces map[namespace]uint64 // each one's number, from 1
}

type pollShard struct {
	mu sync.Mutex
	// By the minute their records leave Badger (Unix seconds / 60,
	// rounded up), then by pollKey: LastPoll in Unix nanoseconds << 1 |
	// Retried.
	byMinute map[uint32]map[uint64]uint64
}

func newPolls() *polls {
	return &polls{seed: maphash.MakeSeed(), namespaces: make(map[namespace]uint64)}
}

// number is the namespace's number for pollKey; 0 when all are taken.
func (p *polls) number(ns namespace) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	n, ok := p.namespaces[ns]
	if !ok && len(p.namespaces) < 1<<namespaceBits-1 {
		n = uint64(len(p.namespaces) + 1)
		p.namespaces[ns] = n
	}
	return n
}

// pollKey packs the namespace's number and a user code of up to 10
// letters and digits (in bijective base 36, so that no two codes pack
// alike) into 64 bits; false when they do not fit.
func pollKey(nsNumber uint64, userCode string) (uint64, bool) {
	if nsNumber == 0 || userCode == "" || len(userCode) > 10 {
		return 0, false
	}
	var k uint64
	for _, c := range []byte(userCode) {
		switch {
		case '0' <= c && c <= '9':
			k = k*36 + uint64(c-'0') + 1
		case 'A' <= c && c <= 'Z':
			k = k*36 + uint64(c-'A') + 11
		default:
			return 0, false
		}
	}
	return nsNumber<<(64-namespaceBits) | k, true
}

// slot is one record's place in the poll memory, with its shard locked.
type slot struct {
	sh     *pollShard
	key    uint64
	packed bool // key is the record's pollKey
}

// lock locks the shard of the record under userCode in the namespace
// (whose Badger key is key), until slot.unlock.
func (p *polls) lock(nsNumber uint64, userCode string, key []byte) slot {
	s := slot{sh: &p.shards[maphash.Bytes(p.seed, key)%pollShards]}
	s.key, s.packed = pollKey(nsNumber, userCode)
	s.sh.mu.Lock()
	return s
}

func (s slot) unlock() { s.sh.mu.Unlock() }

func minuteOf(until uint64) uint32 { return uint32(min((until+59)/60, 1<<32-1)) }

// merge lays the remembered poll fields, if any, over d as read from
// Badger, which keeps it until the Unix second until.
func (s slot) merge(d *flow.Device, until uint64) {
	if v, ok := s.sh.byMinute[minuteOf(until)][s.key]; ok && s.packed {
		d.LastPoll, d.Retried = time.Unix(0, int64(v>>1)), v&1 != 0
	}
}

// forget drops the record's entry: Badger has the newest poll fields, or
// no record.
func (s slot) forget() {
	if s.packed {
		for _, m := range s.sh.byMinute {
			delete(m, s.key)
		}
	}
}

// remember keeps d's poll fields, for a record that Badger keeps until
// the Unix second until. It is false when it cannot: the key does not
// pack, or LastPoll is before 1970 or after 2116.
func (s slot) remember(d *flow.Device, until uint64) bool {
	ns := d.LastPoll.UnixNano()
	if !s.packed || d.LastPoll.IsZero() || ns <= 0 || ns >= 1<<62 { // so that ns<<1 | Retried fits
		return false
	}
	v := uint64(ns) << 1
	if d.Retried {
		v |= 1
	}
	minute := minuteOf(until)
	m := s.sh.byMinute[minute]
	if m == nil {
		if s.sh.byMinute == nil {
			s.sh.byMinute = make(map[uint32]map[uint64]uint64)
		}
		m = make(map[uint64]uint64)
		s.sh.byMinute[minute] = m
	}
	m[s.key] = v
	return true
}

// sweep drops the entries of records that Badger has dropped by now.
func (p *polls) sweep(now time.Time) {
	minute := uint32(max(now.Unix(), 0) / 60)
	for i := range p.shards {
		sh := &p.shards[i]
		sh.mu.Lock()
		for m := range sh.byMinute {
			if m <= minute {
				delete(sh.byMinute, m)
			}
		}
		sh.mu.Unlock()
	}
}

// save writes the poll fields the memory holds into their records, at
// Close: so a stop or a restart forgets no device's last poll (only a
// crash does, as it loses the counters' last flush).
func (p *polls) save(db *DB) error {
	names := p.byNumber()
	for i := range p.shards {
		if err := p.shards[i].save(db, names); err != nil {
			return err
		}
	}
	return nil
}

// save writes one shard's entries, with its lock held until they are
// written, so that no update of those records comes in between.
func (sh *pollShard) save(db *DB, names map[uint64]namespace) error {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	wb := db.bdb.NewWriteBatch()
	defer wb.Cancel()
	for _, m := range sh.byMinute {
		for k, v := range m {
			ns, known := names[k>>(64-namespaceBits)]
			userCode, packed := unpackUserCode(k)
			if !known || !packed {
				continue
			}
			if err := saveLastPoll(db, wb, ns.key(kindDevice, userCode), userCode, v); err != nil {
				return err
			}
		}
	}
	return wb.Flush()
}

// saveLastPoll writes the remembered poll fields v into the record under
// key, if it is still there.
func saveLastPoll(db *DB, wb *badger.WriteBatch, key []byte, userCode string, v uint64) error {
	var d *flow.Device
	err := db.bdb.View(func(txn *badger.Txn) (err error) {
		d, _, err = readDevice(txn, key, userCode)
		return err
	})
	if err != nil || d == nil {
		return err
	}
	d.LastPoll, d.Retried = time.Unix(0, int64(v>>1)), v&1 != 0
	e := badger.NewEntry(key, record.Encode(d))
	e.ExpiresAt = db.keepUntil(d)
	return wb.SetEntry(e)
}

// byNumber is the namespaces by their number.
func (p *polls) byNumber() map[uint64]namespace {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[uint64]namespace, len(p.namespaces))
	for ns, n := range p.namespaces {
		out[n] = ns
	}
	return out
}

// unpackUserCode is the user code of a pollKey (the inverse of its
// bijective base 36).
func unpackUserCode(key uint64) (string, bool) {
	k := key & (1<<(64-namespaceBits) - 1)
	var b []byte
	for k > 0 {
		k--
		c := k % 36
		if c < 10 {
			b = append(b, byte('0'+c))
		} else {
			b = append(b, byte('A'+c-10))
		}
		k /= 36
	}
	slices.Reverse(b)
	return string(b), len(b) > 0
}
