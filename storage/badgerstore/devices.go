package badgerstore

import (
	"bytes"
	"context"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
	"github.com/caddy-device-flow/caddy-device-flow/storage/record"
)

// Device records are keyed by their user code (keys.go), encoded as in
// package record, and read and written with their poll-memory shard locked
// (polls.go): so one record's updates follow one another, and the
// transactions that carry them never conflict.

func (s *Store) CreateDevice(_ context.Context, d *flow.Device) error {
	if s.db.diskLow() {
		return ErrDiskLow
	}
	key := s.ns.key(kindDevice, d.UserCode)
	sl := s.db.polls.lock(s.pollNS, d.UserCode, key)
	defer sl.unlock()
	err := s.db.update(func(txn *badger.Txn) error {
		if _, found, err := get(txn, key); err != nil || found {
			if found {
				return flow.ErrUserCodeTaken
			}
			return err
		}
		return s.db.set(txn, key, record.Encode(d), s.db.keepUntil(d))
	})
	if err == nil {
		sl.forget() // the entry of an expired record under the same user code
	}
	return err
}

func (s *Store) DeviceByUserCode(_ context.Context, userCode string) (*flow.Device, error) {
	key := s.ns.key(kindDevice, userCode)
	sl := s.db.polls.lock(s.pollNS, userCode, key)
	defer sl.unlock()
	var d *flow.Device
	err := s.db.view(func(txn *badger.Txn) (err error) {
		d, _, err = readDevice(txn, key, userCode)
		return err
	})
	if err != nil {
		return nil, err
	}
	if d == nil {
		return nil, flow.ErrNotFound
	}
	sl.merge(d, s.db.keepUntil(d))
	return d, nil
}

// UpdateDevice: see flow.Store. A Save that moves nothing but LastPoll
// and Retried goes to the poll memory (polls.go); any other writes the
// whole record to Badger.
func (s *Store) UpdateDevice(_ context.Context, userCode string, fn func(*flow.Device) (flow.Verdict, error)) error {
	key := s.ns.key(kindDevice, userCode)
	sl := s.db.polls.lock(s.pollNS, userCode, key)
	defer sl.unlock()
	var fnErr error
	err := s.db.update(func(txn *badger.Txn) error {
		d, raw, err := readDevice(txn, key, userCode)
		if err != nil {
			return err
		}
		if d == nil {
			sl.forget()
			_, fnErr = fn(nil) // a verdict on nothing changes nothing
			return nil
		}
		stored := *d // the poll fields as Badger has them
		sl.merge(d, s.db.keepUntil(d))
		merged := *d
		var verdict flow.Verdict
		verdict, fnErr = fn(d)
		switch verdict {
		case flow.Save:
			if onlyPollMoved(d, &stored, raw) {
				if d.LastPoll.Equal(merged.LastPoll) && d.Retried == merged.Retried {
					return nil // nothing moved
				}
				if sl.remember(d, s.db.keepUntil(d)) {
					return nil
				}
			}
			sl.forget()
			return s.db.set(txn, key, record.Encode(d), s.db.keepUntil(d))
		case flow.Delete:
			sl.forget()
			return s.db.del(txn, key)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return fnErr
}

// onlyPollMoved reports whether d, as fn left it, differs from the record
// stored as raw (which decoded to stored) in LastPoll and Retried at most.
// Encoding it with the stored poll fields compares every field the record
// keeps (the encoding is canonical: package record).
func onlyPollMoved(d, stored *flow.Device, raw []byte) bool {
	c := *d
	c.LastPoll, c.Retried = stored.LastPoll, stored.Retried
	return bytes.Equal(record.Encode(&c), raw)
}

// readDevice reads the record under key, and its encoding; nil when there
// is none.
func readDevice(txn *badger.Txn, key []byte, userCode string) (*flow.Device, []byte, error) {
	raw, found, err := get(txn, key)
	if err != nil || !found {
		return nil, nil, err
	}
	d, err := record.Decode(userCode, raw)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: the record of user code %q: %w", flow.ErrUnavailable, userCode, err)
	}
	return d, raw, nil
}
