package redisstore

import (
	"hash/maphash"
	"sync"
)

// DefaultRecentRecords is how many device records a Client remembers at
// least (and at most twice as many: see recent) unless
// Options.RecentRecords says otherwise. A pending record costs ~250 bytes
// here (its stored form, its key and the map's share): 25–50 MiB when
// full, which happens only with 100,000 devices waiting on one instance.
const DefaultRecentRecords = 100_000

// recent remembers device records as this Client last saw them in Redis
// (written, read, or answered by a failed compare-and-swap), by key, as
// the raw value. It exists to save a round trip: UpdateDevice calls fn on
// the remembered record and sends its compare-and-swap straight away,
// instead of reading the record first. It is never trusted: the swap
// compares against what Redis holds, and a stale entry (another instance
// changed the record, or it expired) costs one more round trip, never a
// different answer.
//
// It is bounded by two generations per shard, each of its share of size:
// records go into the new one; when it is full it becomes the old one and
// the old one is dropped; a record found in the old one moves to the new
// one. So the last size records polled or written stay (a fleet of that
// many devices polling in turn never misses), and a code nobody polls is
// forgotten after two generations. A nil *recent remembers nothing.
type recent struct {
	seed   maphash.Seed
	shards [32]recentShard
	max    int // per generation of a shard
}

type recentShard struct {
	mu       sync.Mutex
	new, old map[string]string
}

func newRecent(size int) *recent {
	if size == 0 {
		size = DefaultRecentRecords
	}
	if size < 0 {
		return nil
	}
	r := &recent{seed: maphash.MakeSeed()}
	r.max = max(1, size/len(r.shards))
	for i := range r.shards {
		r.shards[i].new = make(map[string]string)
	}
	return r
}

func (r *recent) shard(key string) *recentShard {
	return &r.shards[maphash.String(r.seed, key)%uint64(len(r.shards))]
}

// get returns the record remembered under key.
func (r *recent) get(key string) (raw string, ok bool) {
	if r == nil {
		return "", false
	}
	sh := r.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if raw, ok = sh.new[key]; ok {
		return raw, true
	}
	if raw, ok = sh.old[key]; ok {
		delete(sh.old, key)
		r.keep(sh, key, raw)
	}
	return raw, ok
}

// put remembers raw under key; an empty raw (no record) forgets key.
func (r *recent) put(key, raw string) {
	if r == nil {
		return
	}
	sh := r.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	delete(sh.old, key)
	if raw == "" {
		delete(sh.new, key)
		return
	}
	r.keep(sh, key, raw)
}

// keep puts raw into the new generation of sh (locked), turning it old
// first when it is full.
func (r *recent) keep(sh *recentShard, key, raw string) {
	if _, ok := sh.new[key]; !ok && len(sh.new) >= r.max {
		sh.old, sh.new = sh.new, make(map[string]string, r.max)
	}
	sh.new[key] = raw
}
