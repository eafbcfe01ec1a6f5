package badgerstore

import (
	"hash/maphash"
	"sync"
	"time"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// Polls of pending codes are the hot path: a fleet of a million devices
// polling every 5 s is 200,000 polls a second, each of which changes
// nothing but LastPoll (and Retried). Writing that to Badger every time
// (a read-modify-write transaction, then the flushes and compactions of
// a record rewritten every few seconds) was most of a poll's cost, and
// reading the record was the rest: a search of the memtables and every
// level of the tree, ~10 µs of CPU at a million live codes against ~1.7
// from memory, so a poll got dearer as codes piled up.
//
// So the poll clock keeps, for every live device that has polled, what a
// pending poll needs, in one 24-byte entry (polltable.go): its last poll
// time and Retried, and, while the device is pending with its seal key
// stored, its expiry (to the second), interval and grant (grants.go). A
// poll of such a device (pollFromClock) hands fn a record made from the
// entry and takes an answer that moved only LastPoll and Retried into
// the entry: it neither reads nor writes Badger, whatever the number of
// live codes. Anything else fn decides (slow_down, expiry, a client that
// does not match, the seal key, approval, delivery) is decided again on
// the record read from Badger, and any change but the poll fields is
// written to Badger at once, poll fields included, as before.
//
// The clock is exact because only this process has the database open
// (Badger locks its folder) and every device update holds its stripe's
// lock from reading the record to writing it and setting the entry
// (UpdateDevice); a new record drops any entry its fingerprint had
// (CreateDevice). Entries go when their code expires (the sweeper) or
// is delivered, so the clock holds at most the live codes
// (max_live_codes), ~30 bytes each.
//
// What the clock does not remember is replaced by what Badger holds, the
// poll fields as of the last write-through: that happens to every code
// at a restart (the clock is not written to disk, and a crash lost the
// last poll times before it existed too). Forgetting only ever favours
// the device. The flow (poll in flow/token_endpoint.go) calls a poll
// early, and answers slow_down, only when it comes less than Interval
// (less a little slack) after LastPoll; it forgives an early poll once,
// when Retried is unset. Between two write-throughs Interval does not
// change, and every poll kept only here was either on time (LastPoll
// moves on by at least Interval less the slack) or a forgiven retry
// (LastPoll stays, Retried is set). So if the newest LastPoll is later
// than Badger's, it is later by at least the interval, and any poll early
// against Badger's is earlier still against the newest: a poll that the
// stale fields call early, the true ones do too, and forgetting can only
// turn a slow_down into a pending. If the LastPoll is the same, only
// Retried can differ, and it was only ever set meanwhile: the stale value
// forgives where the true one would not.
//
// Two live devices share a fingerprint with a chance of ~n²/2^65 for n of
// them (a random seed per process): ~3·10⁻⁸ at a million.

const (
	// stripes of the per-device lock and of the clock; a power of two.
	stripes = 256
	// clockSweepEvery is how often the sweeper drops the entries of
	// expired codes.
	clockSweepEvery = 30 * time.Second
)

var clockSeed = maphash.MakeSeed()

// fingerprint identifies a device in the clock and picks its stripe.
func fingerprint(id string) uint64 {
	fp := maphash.String(clockSeed, id)
	if fp == 0 {
		fp = 1 // 0 marks a free slot
	}
	return fp
}

// stripe serializes the updates of its devices and holds their clock.
type stripe struct {
	mu    sync.Mutex
	polls pollTable
}

func (s *Store) stripe(fp uint64) *stripe { return &s.stripes[fp>>56%stripes] }

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

// An entry's meta: the Unix second ExpiresAt falls in (bits 32–63), then
// what a pending poll checks, when the record is pending with its seal key
// stored: the number of its grant (bits 20–31) and its interval in
// milliseconds (bits 0–19, 1 ms to 17 minutes). An interval of 0 says the
// entry only keeps the poll time.
const (
	metaGrantBits    = 12
	metaIntervalBits = 20
	metaIntervalUnit = time.Millisecond
)

// pollMeta is d's meta; false when d cannot have an entry (an expiry
// before 1970 or after 2106).
func (s *Store) pollMeta(d *flow.Device) (uint64, bool) {
	expires := d.ExpiresAt.Unix()
	if expires <= 0 || expires >= 1<<32 {
		return 0, false
	}
	meta := uint64(expires) << 32
	grant, numbered := s.grants.lookup(d.ClientID, d.Scope)
	interval := d.Interval / metaIntervalUnit
	if d.Status == flow.Pending && d.SealKey != nil && numbered && grant < 1<<metaGrantBits &&
		d.Interval%metaIntervalUnit == 0 && interval > 0 && interval < 1<<metaIntervalBits {
		meta |= uint64(grant)<<metaIntervalBits | uint64(interval)
	}
	return meta, true
}

// pendingDevice is the record a poll of e's device is answered from: what
// the flow's poll reads of a pending code, with its expiry rounded down to
// the second (so a poll in its last second looks expired, and is decided
// again on the record) and a placeholder for the seal key, which a pending
// poll only checks is there. False when e has no such record.
func (s *Store) pendingDevice(id string, e pollEntry) (*flow.Device, bool) {
	interval := e.meta & (1<<metaIntervalBits - 1)
	if interval == 0 || e.clock == noOverlay {
		return nil, false
	}
	grant, ok := s.grants.pair(e.meta >> metaIntervalBits & (1<<metaGrantBits - 1))
	if !ok {
		return nil, false
	}
	return &flow.Device{
		ID:        id,
		ClientID:  grant.client,
		Scope:     grant.scope,
		Status:    flow.Pending,
		ExpiresAt: time.Unix(int64(e.meta>>32), 0),
		Interval:  time.Duration(interval) * metaIntervalUnit,
		LastPoll:  time.Unix(0, int64(e.clock>>1)),
		Retried:   e.clock&1 != 0,
		SealKey:   []byte{},
	}, true
}

// pollFromClock answers a poll from the clock alone when it can (see the
// top of this file): it hands fn the device as the clock has it, and
// reports true if fn's verdict was settled that way. Otherwise nothing
// changed, and fn is to be called again on the record from Badger.
func (s *Store) pollFromClock(st *stripe, fp uint64, id string, fn func(*flow.Device) (flow.Verdict, error)) (bool, error) {
	e, ok := st.polls.get(fp)
	if !ok {
		return false, nil
	}
	d, ok := s.pendingDevice(id, e)
	if !ok {
		return false, nil
	}
	before := *d
	verdict, err := fn(d)
	if verdict != flow.Save || !onlyPollMoved(&before, d) {
		return false, nil
	}
	v, ok := clockValue(d.LastPoll, d.Retried)
	if !ok || d.LastPoll.Before(before.LastPoll) {
		return false, nil
	}
	e.clock = v
	st.polls.put(e)
	return true, err
}

// written sets fp's entry after d was written to Badger: a pending device
// keeps one, with Badger's poll fields, so that its next poll need not
// read the record (the first poll stores the seal key, so this is where
// a device's polls start coming from the clock); any other loses it.
func (s *Store) written(st *stripe, fp uint64, d *flow.Device) {
	meta, ok := s.pollMeta(d)
	v, polled := clockValue(d.LastPoll, d.Retried)
	if !ok || !polled || s.noClock || meta&(1<<metaIntervalBits-1) == 0 {
		st.polls.remove(fp)
		return
	}
	st.polls.put(pollEntry{fp: fp, clock: v, meta: meta})
}

// overlay lays the clock's poll fields for fp over d, if the clock has
// newer ones.
func (st *stripe) overlay(fp uint64, d *flow.Device) {
	e, ok := st.polls.get(fp)
	if !ok || e.clock == noOverlay {
		return
	}
	at := time.Unix(0, int64(e.clock>>1))
	if at.Before(d.LastPoll) || at.Before(d.CreatedAt) {
		return // not this record's (a collision, or an ID used again)
	}
	d.LastPoll, d.Retried = at, e.clock&1 != 0
}

// forgetDevice drops id's entry: a new record under id (or under another
// ID with its fingerprint) starts from what Badger holds.
func (s *Store) forgetDevice(id string) {
	fp := fingerprint(id)
	st := s.stripe(fp)
	st.mu.Lock()
	st.polls.remove(fp)
	st.mu.Unlock()
}

// sweepClock drops the entries of codes expired for a second or more, and
// sizes each stripe's table to what is left.
func (s *Store) sweepClock(now time.Time) {
	expired := uint64(max(now.Unix()-1, 0))
	for i := range s.stripes {
		st := &s.stripes[i]
		st.mu.Lock()
		st.polls.keepOnly(func(e pollEntry) bool { return e.meta>>32 >= expired })
		st.mu.Unlock()
	}
}
