package redisstore

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// scanCount is the COUNT hint of each SCAN: how many keys Redis looks at
// per call.
const scanCount = 1000

// errStopScan ends a walk that fn asked to stop.
var errStopScan = errors.New("redisstore: stop")

// Devices: see flow.Store. It walks the namespace's device keys.
func (s *Store) Devices(ctx context.Context, fn func(*flow.Device) bool) error {
	prefix := s.prefix + "dev:{"
	var decodeErr error
	err := s.walk(ctx, prefix, func(key, raw string) bool {
		userCode := strings.TrimSuffix(key[len(prefix):], "}")
		d, err := decodeDevice(userCode, raw)
		if err != nil {
			decodeErr = err
			return false
		}
		return fn(d)
	})
	if err != nil {
		return err
	}
	return decodeErr
}

// walk SCANs for the keys that start with prefix (MATCH <prefix>*) and
// reads them, a batch per SCAN call in one pipeline, handing each key and
// value to fn until it returns false. On a Cluster it scans every master
// at the same time; fn is still called by one goroutine at a time. A key
// is handed to fn once, though SCAN may return it twice.
func (s *Store) walk(ctx context.Context, prefix string, fn func(key, raw string) bool) error {
	w := &walk{rdb: s.c.rdb, fn: fn, seen: make(map[string]bool)}
	match := globEscape(prefix) + "*"
	var err error
	if cc, ok := s.c.rdb.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			return w.scan(ctx, node, match)
		})
	} else {
		err = w.scan(ctx, s.c.rdb, match)
	}
	if errors.Is(err, errStopScan) {
		return nil
	}
	return err
}

// walk is one call of Store.walk.
type walk struct {
	rdb redis.UniversalClient
	fn  func(key, raw string) bool

	mu   sync.Mutex // serializes fn
	seen map[string]bool
	done bool
}

// scan walks the keys of one node (or of the whole server).
func (w *walk) scan(ctx context.Context, node redis.Cmdable, match string) error {
	var cursor uint64
	for {
		keys, next, err := node.Scan(ctx, cursor, match, scanCount).Result()
		if err != nil {
			return unavailable("scan", err)
		}
		if err := w.read(ctx, keys); err != nil {
			return err
		}
		if cursor = next; cursor == 0 {
			return nil
		}
	}
}

// read gets the values under keys and hands them to fn.
func (w *walk) read(ctx context.Context, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	pipe := w.rdb.Pipeline()
	gets := make([]*redis.StringCmd, len(keys))
	for i, k := range keys {
		gets[i] = pipe.Get(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return unavailable("read", err)
	}
	for i, get := range gets {
		raw, err := get.Result()
		if errors.Is(err, redis.Nil) {
			continue // gone since the scan saw it
		}
		if err != nil {
			return unavailable("read", err)
		}
		if !w.give(keys[i], raw) {
			return errStopScan
		}
	}
	return nil
}

// give hands the key to fn unless it was given already; false once fn
// asked to stop.
func (w *walk) give(key, raw string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return false
	}
	if w.seen[key] {
		return true
	}
	w.seen[key] = true
	w.done = !w.fn(key, raw)
	return !w.done
}

// globEscape quotes the characters that SCAN's MATCH pattern treats as
// special, so a key prefix is matched as it is.
func globEscape(s string) string {
	var b strings.Builder
	for _, c := range s {
		if strings.ContainsRune(`*?[]\^`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}
