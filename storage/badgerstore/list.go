package badgerstore

import (
	"context"
	"errors"

	"github.com/dgraph-io/badger/v4"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// Devices: see flow.Store. It walks the keys of the namespace's device
// records and reads each as DeviceByUserCode does (its shard locked, the
// poll memory laid over it), so what fn gets is as current as a lookup's.
func (s *Store) Devices(ctx context.Context, fn func(*flow.Device) bool) error {
	prefix := s.ns.key(kindDevice, "")
	var stop error // fn's or ctx's, returned as is
	err := s.db.view(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = prefix
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.ValidForPrefix(prefix); it.Next() {
			if stop = ctx.Err(); stop != nil {
				return nil
			}
			userCode := string(it.Item().Key()[len(prefix):])
			d, err := s.DeviceByUserCode(ctx, userCode)
			if errors.Is(err, flow.ErrNotFound) {
				continue // gone since the walk began
			}
			if err != nil {
				stop = err
				return nil
			}
			if !fn(d) {
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return stop
}
