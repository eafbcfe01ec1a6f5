package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

// Devices: see flow.Store. It SCANs for the namespace's device keys
// (MATCH <prefix>dev:{*}) and reads the records it finds, a batch per
// SCAN call in one pipeline. On a Cluster it scans every master, at the
// same time; fn is still called by one goroutine at a time. A key may be
// seen twice (SCAN's guarantee is at least once): each user code is
// handed to fn once.
func (s *Store) Devices(ctx context.Context, fn func(*flow.Device) bool) error {
	w := &deviceWalk{s: s, fn: fn, seen: make(map[string]bool)}
	var err error
	if cc, ok := s.c.rdb.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			return w.scan(ctx, node)
		})
	} else {
		err = w.scan(ctx, s.c.rdb)
	}
	if errors.Is(err, errStopScan) {
		return nil
	}
	return err
}

// deviceWalk is one call of Devices.
type deviceWalk struct {
	s  *Store
	fn func(*flow.Device) bool

	mu   sync.Mutex // serializes fn
	seen map[string]bool
	done bool
}

// scan walks the keys of one node (or of the whole server).
func (w *deviceWalk) scan(ctx context.Context, node redis.Cmdable) error {
	prefix := w.s.prefix + "dev:{"
	match := globEscape(prefix) + "*}"
	var cursor uint64
	for {
		keys, next, err := node.Scan(ctx, cursor, match, scanCount).Result()
		if err != nil {
			return unavailable("scan devices", err)
		}
		if err := w.read(ctx, prefix, keys); err != nil {
			return err
		}
		if cursor = next; cursor == 0 {
			return nil
		}
	}
}

// read gets the records under keys and hands them to fn.
func (w *deviceWalk) read(ctx context.Context, prefix string, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	pipe := w.s.c.rdb.Pipeline()
	gets := make([]*redis.StringCmd, len(keys))
	for i, k := range keys {
		gets[i] = pipe.Get(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return unavailable("read devices", err)
	}
	for i, get := range gets {
		raw, err := get.Result()
		if errors.Is(err, redis.Nil) {
			continue // gone since the scan saw it
		}
		if err != nil {
			return unavailable("read devices", err)
		}
		userCode := strings.TrimSuffix(strings.TrimPrefix(keys[i], prefix), "}")
		d := new(flow.Device)
		if err := json.Unmarshal([]byte(raw), d); err != nil {
			return fmt.Errorf("redisstore: decoding device %q: %w", userCode, err)
		}
		if !w.give(userCode, d) {
			return errStopScan
		}
	}
	return nil
}

// give hands d to fn unless its user code was given already; false once
// fn asked to stop.
func (w *deviceWalk) give(userCode string, d *flow.Device) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return false
	}
	if w.seen[userCode] {
		return true
	}
	w.seen[userCode] = true
	w.done = !w.fn(d)
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
