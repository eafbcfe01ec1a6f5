package badgerstore

import (
	"encoding/binary"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
)

// Every code of a client asks for much the same thing: the same client_id
// and, mostly, the same scope. Written out in each record they were ~18
// bytes of a ~75-byte record in the benchmarks and easily 70 in use (a
// UUID for a client_id, "openid profile email offline_access"), paid for
// every live code in memtables, tables, compactions and the page cache.
// So the store numbers each (client_id, scope) pair it sees, a grant,
// keeps the pairs under their own keys, and a record names its grant by
// number (codec.go, grantFlag).
//
// A pair is written (its own transaction, once in the life of the store)
// before any record names it, so no record can name a number the store
// does not hold. Pairs are never deleted: they are few and small, and at
// most maxGrants of them are numbered; a record of any other pair, or one
// written while its pair could not be, holds the strings as before.
// Scopes come from the device endpoint only after they were checked
// against the configured ones, so the pairs are bounded by what operators
// configure, not by what clients send.
const maxGrants = 4096

// grantTable maps the numbered pairs both ways. Reads take no lock: they
// load the current snapshot, which adding a pair replaces.
type grantTable struct {
	db   *badger.DB
	max  int        // pairs numbered at most: maxGrants (fewer in tests)
	mu   sync.Mutex // adding
	snap atomic.Pointer[grantSnapshot]
}

type grantPair struct{ client, scope string }

type grantSnapshot struct {
	numbers map[grantPair]int
	pairs   []grantPair // by number
}

// loadGrants reads the pairs the store holds.
func loadGrants(db *badger.DB) (*grantTable, error) {
	g := &grantTable{db: db, max: maxGrants}
	snap := &grantSnapshot{numbers: map[grantPair]int{}}
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{grantKeyPrefix}, PrefetchValues: false})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n, ok := parseGrantKey(it.Item().Key())
			if !ok {
				continue
			}
			err := it.Item().Value(func(b []byte) error {
				r := reader{b: b}
				c0, c1 := r.field()
				s0, s1 := r.field()
				if r.bad || r.off != len(b) {
					return errCorruptRecord
				}
				for len(snap.pairs) <= n {
					snap.pairs = append(snap.pairs, grantPair{})
				}
				p := grantPair{string(b[c0:c1]), string(b[s0:s1])}
				snap.pairs[n], snap.numbers[p] = p, n
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	g.snap.Store(snap)
	return g, err
}

// number is the pair's number, written to the store first if it is new;
// -1 when the record should hold the strings (the table is full, or the
// pair could not be written).
func (g *grantTable) number(client, scope string) int {
	p := grantPair{client, scope}
	if n, ok := g.snap.Load().numbers[p]; ok {
		return n
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	old := g.snap.Load()
	if n, ok := old.numbers[p]; ok {
		return n
	}
	n := len(old.pairs)
	if n >= g.max {
		return -1
	}
	value := appendField(appendField(nil, client), scope)
	if err := g.db.Update(func(txn *badger.Txn) error { return txn.Set(grantKey(n), value) }); err != nil {
		return -1
	}
	next := &grantSnapshot{numbers: make(map[grantPair]int, n+1), pairs: append(old.pairs[:n:n], p)}
	for q, m := range old.numbers {
		next.numbers[q] = m
	}
	next.numbers[p] = n
	g.snap.Store(next)
	return n
}

// lookup is the pair's number, if it has one; unlike number it never
// adds the pair.
func (g *grantTable) lookup(client, scope string) (int, bool) {
	if g == nil {
		return 0, false
	}
	n, ok := g.snap.Load().numbers[grantPair{client, scope}]
	return n, ok
}

// pair is the pair numbered n.
func (g *grantTable) pair(n uint64) (grantPair, bool) {
	if g == nil {
		return grantPair{}, false
	}
	pairs := g.snap.Load().pairs
	if n >= uint64(len(pairs)) {
		return grantPair{}, false
	}
	return pairs[n], true
}

func grantKey(n int) []byte {
	return binary.BigEndian.AppendUint32([]byte{grantKeyPrefix}, uint32(n))
}

func parseGrantKey(key []byte) (int, bool) {
	if len(key) != 5 || key[0] != grantKeyPrefix {
		return 0, false
	}
	n := binary.BigEndian.Uint32(key[1:])
	return int(n), n < maxGrants
}

func appendField(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}
