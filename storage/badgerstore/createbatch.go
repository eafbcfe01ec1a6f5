package badgerstore

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// Issuing codes is a write per code, and under load the device endpoint
// issues many at once. One Badger transaction per code cost ~46 µs of CPU
// (setting it up, the oracle's watermarks, handing it to Badger's write
// goroutine and back, futex wake-ups), more than the rest of the request.
//
// So concurrent CreateDevice calls are committed together (group commit):
// the first caller becomes the leader and commits, in one transaction, the
// calls queued up to then (at most maxCreateBatch); the others wait for
// their result. When the leader is done, the next waiting caller, if any,
// leads the next batch, which has meanwhile filled up. A caller alone
// commits at once, as before.
//
// Each record still gets its own answer: a user code held by a live
// device, or by an earlier record of the same batch, gets
// flow.ErrUserCodeTaken and stores nothing. A conflict (a concurrent
// delete of a user code that the batch read) retries the whole batch; a
// batch too big for one transaction is split in halves. Durability is as
// before: CreateDevice returns once its record is in Badger's write-ahead
// log (the page cache), so a crash of the process loses none.
//
// A waiting caller ignores its context: it waits at most for one commit,
// and leaving the queue early could strand the batch it was to lead.

// maxCreateBatch caps a batch: 64 concurrent requests fit in one, and a
// batch stays far below Badger's transaction limit (~6,000 entries with
// 4 MiB memtables).
const maxCreateBatch = 256

// testHookCreateRead, when set (by tests), runs after a batch has found a
// user code free, before its transaction commits.
var testHookCreateRead func(userCode string)

type createQueue struct {
	mu      sync.Mutex
	pending []*createCall
	busy    bool // a leader is committing
}

type createCall struct {
	rec  *flow.Device
	err  error
	lead bool          // woken to lead the next batch
	wake chan struct{} // closed when err is set, or to lead
}

// CreateDevice queues rec for the next batch (see above).
func (s *Store) CreateDevice(_ context.Context, rec *flow.Device) error {
	if uc, ok := userCodeOfID(rec); ok && uc != rec.UserCode {
		return errors.New("badgerstore: the record's ID (a flow.UserCodeID) names another user code than the record's")
	}
	call := &createCall{rec: rec, wake: make(chan struct{})}
	q := &s.creates
	q.mu.Lock()
	q.pending = append(q.pending, call)
	if q.busy {
		q.mu.Unlock()
		<-call.wake
		if !call.lead {
			return call.err
		}
		q.mu.Lock() // this call is first in the queue: it leads
	}
	q.busy = true
	n := min(len(q.pending), maxCreateBatch)
	batch := append([]*createCall(nil), q.pending[:n]...)
	q.pending = append(q.pending[:0], q.pending[n:]...)
	q.mu.Unlock()

	s.commitCreates(batch)

	q.mu.Lock()
	if len(q.pending) > 0 {
		next := q.pending[0]
		next.lead = true
		close(next.wake)
	} else {
		q.busy = false
	}
	q.mu.Unlock()
	for _, c := range batch {
		if c != call {
			close(c.wake)
		}
	}
	if call.err == nil {
		s.forgetDevice(rec.ID) // pollclock.go
	}
	return call.err
}

// commitCreates stores the batch in one transaction, setting each call's
// err.
func (s *Store) commitCreates(batch []*createCall) {
	s.writes.Add(1)
	var err error
	for range maxConflictRetries {
		err = s.db.Update(func(txn *badger.Txn) error { return s.createInTxn(txn, batch) })
		if !errors.Is(err, badger.ErrConflict) {
			break
		}
	}
	switch {
	case errors.Is(err, badger.ErrTxnTooBig) && len(batch) > 1:
		s.commitCreates(batch[:len(batch)/2])
		s.commitCreates(batch[len(batch)/2:])
		return
	case errors.Is(err, badger.ErrConflict):
		err = fmt.Errorf("%w: too many write conflicts", flow.ErrUnavailable)
	case err == nil:
		s.noteStoredCodes(batch)
	}
	if err != nil {
		for _, c := range batch {
			if c.err == nil {
				c.err = err
			}
		}
	}
}

func (s *Store) createInTxn(txn *badger.Txn, batch []*createCall) error {
	claimed := make(map[string]bool, len(batch)) // user codes of this batch
	for _, c := range batch {
		c.err = nil
		uc := c.rec.UserCode
		if claimed[uc] {
			c.err = flow.ErrUserCodeTaken
			continue
		}
		taken := false
		if s.legacy.Load() || s.codes.mayBeTaken(uc) { // see usercodefilter.go
			var err error
			if taken, err = s.userCodeTaken(txn, uc); err != nil {
				return err
			}
		}
		if taken {
			c.err = flow.ErrUserCodeTaken
			continue
		}
		claimed[uc] = true
		if testHookCreateRead != nil {
			testHookCreateRead(uc)
		}
		until := s.keepUntil(c.rec.ExpiresAt)
		if _, byUserCode := userCodeOfID(c.rec); !byUserCode {
			// An ID of the previous shape: the record, and its user
			// code's entry (keys.go).
			if err := txn.SetEntry(entry(userCodeKey(uc), idRef(c.rec.ID), until)); err != nil {
				return err
			}
		}
		if err := txn.SetEntry(entry(deviceKey(c.rec.ID), s.encode(c.rec), until)); err != nil {
			return err
		}
	}
	return nil
}

// noteStoredCodes adds the user codes a batch stored to the filter, and
// rebuilds the filter in the background when it is due.
func (s *Store) noteStoredCodes(batch []*createCall) {
	codes := make([]string, 0, len(batch))
	for _, c := range batch {
		if c.err == nil {
			codes = append(codes, c.rec.UserCode)
		}
	}
	if !s.codes.add(codes) {
		return
	}
	s.gcDone.Add(1)
	go func() {
		defer s.gcDone.Done()
		if err := s.codes.build(s.db); err != nil {
			s.log.Warn("rebuilding the user code filter failed; it goes on as it was", zap.Error(err))
		}
	}()
}

// userCodeOfID is the user code rec's ID names, if it is a
// flow.UserCodeID: such a record is kept under its user code alone.
func userCodeOfID(rec *flow.Device) (string, bool) {
	uc, _, ok := flow.SplitUserCodeID(rec.ID)
	return uc, ok
}
