package badgerstore

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"

	"github.com/dgraph-io/badger/v4"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// Device records: where they are (keys.go), how they are read, updated
// and deleted. Creating them is createbatch.go; the poll fields that live
// only in memory are pollclock.go.

// stored is a device record as read from Badger, with where it was found.
type stored struct {
	d      *flow.Device
	key    []byte // the record's key
	legacy bool   // under the keys of earlier versions
}

// getDevice reads the device record with the given ID; flow.ErrNotFound
// when there is none.
func (s *Store) getDevice(txn *badger.Txn, id string) (stored, error) {
	key := deviceKey(id)
	rec, err := s.readDevice(txn, key, id)
	if errors.Is(err, flow.ErrNotFound) && s.legacy.Load() {
		key = []byte(legacyDevicePrefix + id)
		rec, err = s.readDevice(txn, key, id)
		return stored{d: rec, key: key, legacy: true}, err
	}
	return stored{d: rec, key: key}, err
}

func (s *Store) readDevice(txn *badger.Txn, key []byte, id string) (*flow.Device, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, flow.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	var d *flow.Device
	err = item.Value(func(b []byte) error {
		d, err = decodeDevice(id, b, s.grants)
		return err
	})
	if err == nil && subtle.ConstantTimeCompare([]byte(d.ID), []byte(id)) != 1 {
		// Keyed by its user code, the record is another code's: a
		// device code that unmasks to a live user code but is not the
		// one issued with it.
		return nil, flow.ErrNotFound
	}
	return d, err
}

// encode encodes d for Badger, naming its grant (grants.go).
func (s *Store) encode(d *flow.Device) []byte {
	return appendDevice(nil, d, s.grants.number(d.ClientID, d.Scope))
}

// userCodeKey is the key of the user code entry that goes with rec; nil
// for a record keyed by its user code, which has none.
func (rec stored) userCodeKey() []byte {
	if rec.key[0] == userCodeRecordPrefix {
		return nil
	}
	if rec.legacy {
		return []byte(legacyUserCodePrefix + rec.d.UserCode)
	}
	return userCodeKey(rec.d.UserCode)
}

func (s *Store) DeviceByUserCode(_ context.Context, userCode string) (*flow.Device, error) {
	var rec stored
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		rec, err = s.deviceByUserCode(txn, userCode)
		return err
	})
	if err != nil {
		return nil, err
	}
	fp := fingerprint(rec.d.ID)
	st := s.stripe(fp)
	st.mu.Lock()
	st.overlay(fp, rec.d)
	st.mu.Unlock()
	return rec.d, nil
}

// deviceByUserCode reads the device that holds the user code: a record
// keyed by it, else one of the previous layout that a user code entry
// names.
func (s *Store) deviceByUserCode(txn *badger.Txn, userCode string) (stored, error) {
	key := userCodeRecordKey(userCode)
	if item, err := txn.Get(key); err == nil {
		var d *flow.Device
		err := item.Value(func(b []byte) error {
			if d, err = decodeDevice("", b, s.grants); err == nil && d.ID == "" {
				err = errCorruptRecord // a record under a user code holds its ID's hash
			}
			return err
		})
		return stored{d: d, key: key}, err
	} else if !errors.Is(err, badger.ErrKeyNotFound) {
		return stored{}, err
	}
	item, err := txn.Get(userCodeKey(userCode))
	legacy := false
	if errors.Is(err, badger.ErrKeyNotFound) && s.legacy.Load() {
		item, err = txn.Get([]byte(legacyUserCodePrefix + userCode))
		legacy = true
	}
	if errors.Is(err, badger.ErrKeyNotFound) {
		return stored{}, flow.ErrNotFound
	}
	if err != nil {
		return stored{}, err
	}
	ref, err := item.ValueCopy(nil)
	if err != nil {
		return stored{}, err
	}
	if legacy {
		return s.getDevice(txn, string(ref))
	}
	id, prefix, err := parseIDRef(ref)
	if err != nil {
		return stored{}, err
	}
	if prefix == nil {
		return s.getDevice(txn, id)
	}
	// The records whose raw ID starts with prefix: the one with this
	// user code is it.
	it := txn.NewIterator(badger.IteratorOptions{Prefix: append([]byte{deviceKeyPrefix}, prefix...)})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		key := it.Item().KeyCopy(nil)
		if !isRawIDKey(key) {
			continue
		}
		id := idEncoding.EncodeToString(key[1:])
		var d *flow.Device
		if err := it.Item().Value(func(b []byte) error {
			d, err = decodeDevice(id, b, s.grants)
			return err
		}); err != nil {
			return stored{}, err
		}
		if d.UserCode == userCode {
			return stored{d: d, key: key}, nil
		}
	}
	return stored{}, flow.ErrNotFound
}

// userCodeTaken reports whether a live device holds the user code.
func (s *Store) userCodeTaken(txn *badger.Txn, userCode string) (bool, error) {
	keys := [][]byte{userCodeRecordKey(userCode), userCodeKey(userCode)}
	if s.legacy.Load() {
		keys = append(keys, []byte(legacyUserCodePrefix+userCode))
	}
	for _, k := range keys {
		_, err := txn.Get(k)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, badger.ErrKeyNotFound) {
			return false, err
		}
	}
	return false, nil
}

// UpdateDevice answers a pending poll from the poll clock when it can
// (pollFromClock); otherwise it reads the record, lays the clock over it,
// and applies fn's verdict: a Save that moved only LastPoll and Retried
// goes to the clock, anything else to Badger at once (see pollclock.go).
// The stripe's lock, held throughout, makes it atomic: only this process
// writes the database, and every device update takes the lock.
func (s *Store) UpdateDevice(_ context.Context, id string, fn func(*flow.Device) (flow.Verdict, error)) error {
	fp := fingerprint(id)
	st := s.stripe(fp)
	st.mu.Lock()
	defer st.mu.Unlock()
	if !s.noClock {
		if settled, err := s.pollFromClock(st, fp, id, fn); settled {
			return err
		}
	}
	var rec stored
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		rec, err = s.getDevice(txn, id)
		return err
	})
	if errors.Is(err, flow.ErrNotFound) {
		st.polls.remove(fp)
		_, err := fn(nil) // a verdict on nothing changes nothing
		return err
	}
	if err != nil {
		return err
	}
	inBadger := rec.d.LastPoll
	st.overlay(fp, rec.d)
	before := *rec.d
	before.SealKey, before.Sealed = bytes.Clone(rec.d.SealKey), bytes.Clone(rec.d.Sealed)
	verdict, fnErr := fn(rec.d)
	rec.d.ID = id // the record is stored under id, whatever fn did
	switch verdict {
	case flow.Save:
		if onlyPollMoved(&before, rec.d) {
			if rec.d.LastPoll.Equal(before.LastPoll) && rec.d.Retried == before.Retried {
				break // nothing moved
			}
			// The clock takes poll times that overlay will lay over
			// this record; any other is written through.
			v, ok := clockValue(rec.d.LastPoll, rec.d.Retried)
			if ok && !s.noClock && !rec.d.LastPoll.Before(inBadger) && !rec.d.LastPoll.Before(rec.d.CreatedAt) {
				if meta, ok := s.pollMeta(rec.d); ok {
					st.polls.put(pollEntry{fp: fp, clock: v, meta: meta})
					break
				}
			}
		}
		if err := s.update(func(txn *badger.Txn) error {
			return txn.SetEntry(entry(rec.key, s.encode(rec.d), s.keepUntil(rec.d.ExpiresAt)))
		}); err != nil {
			st.polls.remove(fp) // Badger may or may not hold the new record
			return err
		}
		s.written(st, fp, rec.d)
	case flow.Delete:
		st.polls.remove(fp)
		if err := s.update(func(txn *badger.Txn) error {
			if err := txn.Delete(rec.key); err != nil {
				return err
			}
			if uc := rec.userCodeKey(); uc != nil {
				return txn.Delete(uc)
			}
			return nil
		}); err != nil {
			return err
		}
	}
	return fnErr
}

// onlyPollMoved reports whether b differs from a in LastPoll and Retried
// at most (TestOnlyPollMovedSeesEveryField keeps it up to date with
// flow.Device).
func onlyPollMoved(a, b *flow.Device) bool {
	return a.ID == b.ID && a.UserCode == b.UserCode && a.ClientID == b.ClientID && a.Scope == b.Scope &&
		a.Status == b.Status && a.CreatedAt.Equal(b.CreatedAt) && a.ExpiresAt.Equal(b.ExpiresAt) &&
		a.Interval == b.Interval && bytes.Equal(a.SealKey, b.SealKey) && bytes.Equal(a.Sealed, b.Sealed) &&
		a.Reason == b.Reason
}
