package badgerstore

import (
	"context"
	"encoding/base64"
	"errors"

	"github.com/dgraph-io/badger/v4"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
	"github.com/caddy-device-flow/caddy-device-flow/storage/record"
)

// Devices: see flow.Store. Badger keeps keys sorted, so a page is the
// next limit user codes after the cursor (the last user code of the page
// before, base64url): every record is listed once, in user code order,
// whatever is written meanwhile. Each is read as DeviceByUserCode does
// (its shard locked, the poll memory laid over it), so what a page holds
// is as current as a lookup's.
func (s *Store) Devices(ctx context.Context, cursor string, limit int) (flow.DevicePage, error) {
	after, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || limit < 1 {
		return flow.DevicePage{}, flow.ErrBadCursor
	}
	userCodes, more, err := s.deviceKeys(string(after), limit)
	if err != nil {
		return flow.DevicePage{}, err
	}
	var page flow.DevicePage
	for _, userCode := range userCodes {
		if err := ctx.Err(); err != nil {
			return flow.DevicePage{}, err
		}
		d, err := s.DeviceByUserCode(ctx, userCode)
		switch {
		case errors.Is(err, record.ErrCorrupt):
			page.Unreadable = append(page.Unreadable, userCode)
		case errors.Is(err, flow.ErrNotFound):
			// gone since the keys were read
		case err != nil:
			return flow.DevicePage{}, err
		default:
			page.Devices = append(page.Devices, d)
		}
	}
	if more {
		page.Next = base64.RawURLEncoding.EncodeToString([]byte(userCodes[len(userCodes)-1]))
	}
	return page, nil
}

// deviceKeys returns the first limit user codes of the namespace's
// device records after the user code after ("" for the first), and
// whether more follow.
func (s *Store) deviceKeys(after string, limit int) (userCodes []string, more bool, err error) {
	prefix := s.ns.key(kindDevice, "")
	err = s.db.view(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = prefix
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Seek(s.ns.key(kindDevice, after)); it.ValidForPrefix(prefix); it.Next() {
			userCode := string(it.Item().Key()[len(prefix):])
			if after != "" && userCode == after {
				continue
			}
			if len(userCodes) == limit {
				more = true
				return nil
			}
			userCodes = append(userCodes, userCode)
		}
		return nil
	})
	return userCodes, more, err
}
