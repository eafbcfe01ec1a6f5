package redistest

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// Chaos runs the load of a failover test: workers started with Go run
// until Stop (called at the test's end at the latest, also when it fails
// midway) and ask Stopped whether to go on.
type Chaos struct {
	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// StartChaos returns a Chaos that stops when t ends.
func StartChaos(t testing.TB) *Chaos {
	c := &Chaos{stop: make(chan struct{})}
	t.Cleanup(c.Stop)
	return c
}

// Go runs fn as a worker.
func (c *Chaos) Go(fn func()) { c.wg.Go(fn) }

// Stopped reports whether Stop was called.
func (c *Chaos) Stopped() bool {
	select {
	case <-c.stop:
		return true
	default:
		return false
	}
}

// Stop tells the workers to stop and waits for them.
func (c *Chaos) Stop() {
	c.once.Do(func() { close(c.stop) })
	c.wg.Wait()
}

// Ledger is what a failover test notes besides its own bookkeeping: when
// each write of a record (keyed by K) was acknowledged, to tell the ones
// Redis's asynchronous replication may lose with the killed master from
// those it must keep (Unreplicated); and the failures on the way, counted
// by what failed and where, with when they began and ended on the killed
// master's slots and elsewhere (Report). Safe for concurrent use.
type Ledger[K comparable] struct {
	mu          sync.Mutex
	acks        map[K][]time.Time
	failures    map[string]int
	first, last map[bool]time.Time // by on the killed master's slots
}

// NewLedger returns an empty Ledger.
func NewLedger[K comparable]() *Ledger[K] {
	return &Ledger[K]{acks: map[K][]time.Time{}, failures: map[string]int{}, first: map[bool]time.Time{}, last: map[bool]time.Time{}}
}

// Ack notes that a write of k was acknowledged now.
func (l *Ledger[K]) Ack(k K) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.acks[k] = append(l.acks[k], time.Now())
}

// Unreplicated says whether a write of k was acknowledged between from
// (when the master's replica had confirmed everything: Replicated) and to
// (the kill): one that Redis may lose with the master, if k is on its
// slots.
func (l *Ledger[K]) Unreplicated(k K, from, to time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, at := range l.acks[k] {
		if !at.Before(from) && !at.After(to) {
			return true
		}
	}
	return false
}

// Failed counts a failure (an unavailable store, a 503) of what, on the
// killed master's slots (onVictim) or elsewhere.
func (l *Ledger[K]) Failed(what string, onVictim bool) {
	where := " elsewhere"
	if onVictim {
		where = " on the killed master's slots"
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failures[what+where]++
	if l.first[onVictim].IsZero() {
		l.first[onVictim] = now
	}
	l.last[onVictim] = now
}

// FailedSomewhere counts a failure of what whose slot is unknown.
func (l *Ledger[K]) FailedSomewhere(what string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failures[what]++
}

// Report logs the failures: when they began and ended after the kill, on
// the killed master's slots and elsewhere, and how many of each there
// were.
func (l *Ledger[K]) Report(t testing.TB, killed time.Time) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, v := range []bool{true, false} {
		if !l.first[v].IsZero() {
			t.Logf("failures (on the killed master's slots: %v) from %v to %v after the kill",
				v, l.first[v].Sub(killed).Round(time.Millisecond), l.last[v].Sub(killed).Round(time.Millisecond))
		}
	}
	t.Logf("failures: %v", l.failures)
}

// InSlots reports whether key hashes into one of the ranges of slots
// (Cluster.Slots).
func InSlots(slots [][2]int, key string) bool {
	slot := KeySlot(key)
	return slices.ContainsFunc(slots, func(r [2]int) bool { return r[0] <= slot && slot <= r[1] })
}
