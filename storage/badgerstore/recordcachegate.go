package badgerstore

import (
	"math"
	"math/bits"
	"sync/atomic"
)

// The record cache (recordcache.go) only pays while the devices that poll
// fit in it. A million devices polling in turn hit a 65,536-record cache
// one poll in fifteen, and its ~13 MiB (twice that at the garbage
// collector's peak) would be spent for nothing: at 1M live codes that is
// the difference between fitting in 256 MiB and not.
//
// So the store counts the distinct devices it reads in a window of
// clockSweepEvery (30 s: a pending device polls several times in it), and
// caches only while they fit: it opens the cache once the window has seen
// no more devices than the cache holds, each read twice on average (they
// poll again: a cache would serve them), and closes it, dropping what it
// holds, as soon as the window has seen more than twice as many (devices
// polling in turn would then hit it less than half the time). Between
// the two it stays as it is, so that a count near the size does not flap.
// It starts closed: a million devices polling from the start would
// otherwise fill it before the count sees them.
//
// The count is linear counting (Whang et al., 1990): a bit per device,
// picked by its fingerprint, in a 2^18-bit sketch (32 KiB); with z bits
// still clear, about -m·ln(z/m) devices were seen. Its error is a few
// percent up to millions of devices, far finer than this decision needs.
type cacheGate struct {
	sketch   [sketchBits / 64]atomic.Uint64
	reads    atomic.Uint64 // in this window
	open     atomic.Bool
	capacity float64 // records the cache holds in all; 0: no gate
	every    uint64  // reads between two decisions
}

const (
	sketchBits = 1 << 18
	// gateDecideEvery: at most this many reads go between two decisions
	// (counting the sketch's bits takes ~1 µs); fewer for a small cache.
	gateDecideEvery = 4096
)

func newCacheGate(capacity int) *cacheGate {
	return &cacheGate{capacity: float64(capacity), every: uint64(min(max(capacity/16, 16), gateDecideEvery))}
}

// note counts a read of the device fp.
func (g *cacheGate) note(fp uint64) {
	if g.capacity == 0 {
		return
	}
	w, bit := &g.sketch[fp%sketchBits/64], uint64(1)<<(fp%64)
	if w.Load()&bit == 0 { // most reads find it set: no write to share
		w.Or(bit)
	}
	if n := g.reads.Add(1); n%g.every == 0 {
		g.decide(n)
	}
}

// decide opens or closes the cache by what the window has seen in reads.
func (g *cacheGate) decide(reads uint64) {
	switch devices := g.devices(); {
	case devices > 2*g.capacity:
		g.open.Store(false)
	case devices <= g.capacity && float64(reads) >= 2*devices:
		g.open.Store(true)
	}
}

// caching reports whether records should be cached now. Without a
// capacity there is nothing to decide: the stripes cache what they may
// (nothing, or what a test asks).
func (g *cacheGate) caching() bool { return g.capacity == 0 || g.open.Load() }

// endWindow decides on the window that ends and starts the next one.
func (g *cacheGate) endWindow() {
	if g.capacity == 0 {
		return
	}
	g.decide(g.reads.Load())
	for i := range g.sketch {
		g.sketch[i].Store(0)
	}
	g.reads.Store(0)
}

// devices estimates how many distinct devices the window has read.
func (g *cacheGate) devices() float64 {
	set := 0
	for i := range g.sketch {
		set += bits.OnesCount64(g.sketch[i].Load())
	}
	if set == sketchBits {
		return math.Inf(1) // past what the sketch can tell: very many
	}
	return -sketchBits * math.Log(float64(sketchBits-set)/sketchBits)
}
