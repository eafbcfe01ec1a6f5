package redisstore

import (
	"hash/maphash"
	"sync"
)

// DefaultRecentRecords is how many device records a Client remembers
// unless Options.RecentRecords says otherwise: about 40 MiB at ~400 bytes
// each (a record's JSON, its key and the map's own share).
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
// It is bounded: when full, storing a record drops another at random (Go
// map order). A nil *recent remembers nothing.
type recent struct {
	seed   maphash.Seed
	shards [32]recentShard
	max    int // per shard
}

type recentShard struct {
	mu sync.Mutex
	m  map[string]string
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
		r.shards[i].m = make(map[string]string)
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
	raw, ok = sh.m[key]
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
	if raw == "" {
		delete(sh.m, key)
		return
	}
	if _, ok := sh.m[key]; !ok && len(sh.m) >= r.max {
		for k := range sh.m {
			delete(sh.m, k)
			break
		}
	}
	sh.m[key] = raw
}
