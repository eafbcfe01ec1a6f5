package redisstore

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash/fnv"
	"slices"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
	"github.com/caddy-device-flow/caddy-device-flow/storage/record"
)

// scanCount is the COUNT hint of each SCAN: how many keys Redis looks at
// per call.
const scanCount = 1000

// errStopScan ends a walk that fn asked to stop.
var errStopScan = errors.New("redisstore: stop")

// Devices: see flow.Store. It SCANs for the namespace's device keys
// (on a Cluster, master after master, in the order of their addresses)
// and reads the page's records in one pipeline. The cursor holds where
// the SCAN stands: the master's index, Redis's SCAN cursor and a
// fingerprint of the masters' addresses, so a listing across a change of
// masters (a failover, a resharding) fails with flow.ErrBadCursor rather
// than miss or repeat codes unnoticed. SCAN sees every key that exists
// throughout; it may give a key twice when Redis shrinks its key table
// meanwhile (many keys gone at once): within a page that is undone, but
// a code may then show on two pages. A page ends before a SCAN answer
// that would take it past limit, and that answer is asked again for the
// next page; only when a single slot of Redis's table holds more of the
// namespace's keys than limit (a limit of one or two) is a page longer.
func (s *Store) Devices(ctx context.Context, cursor string, limit int) (flow.DevicePage, error) {
	nodes, fingerprint, err := s.scanNodes(ctx)
	if err != nil {
		return flow.DevicePage{}, err
	}
	at, err := parseListCursor(cursor, fingerprint, len(nodes))
	if err != nil || limit < 1 {
		return flow.DevicePage{}, flow.ErrBadCursor
	}
	prefix := s.prefix + "dev:{"
	match := globEscape(prefix) + "*"
	var keys []string
	seen := make(map[string]bool)
	for at.node < len(nodes) && len(keys) < limit {
		// SCAN's COUNT is how many slots of its table Redis looks at, and
		// a slot may hold several keys: an answer past the page's room is
		// asked again with a smaller COUNT (the cursor is the same).
		var batch []string
		var next uint64
		for count := min(limit-len(keys), scanCount); ; count /= 2 {
			found, cursor, err := nodes[at.node].Scan(ctx, at.scan, match, int64(count)).Result()
			if err != nil {
				return flow.DevicePage{}, unavailable("scan", err)
			}
			batch, next = slices.DeleteFunc(found, func(k string) bool { return seen[k] }), cursor
			if count == 1 || len(batch) <= limit-len(keys) {
				break
			}
		}
		if len(keys) > 0 && len(keys)+len(batch) > limit {
			break // the next page asks for this batch again
		}
		for _, k := range batch {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
		if at.scan = next; next == 0 {
			at.node, at.scan = at.node+1, 0
		}
	}
	values, err := getAll(ctx, s.c.rdb, keys)
	if err != nil {
		return flow.DevicePage{}, err
	}
	var page flow.DevicePage
	for i, k := range keys {
		raw, found := values[i], values[i] != nil
		if !found {
			continue // gone since the scan saw it
		}
		userCode := strings.TrimSuffix(k[len(prefix):], "}")
		if d, err := record.Decode(userCode, []byte(*raw)); err != nil {
			page.Unreadable = append(page.Unreadable, userCode)
		} else {
			page.Devices = append(page.Devices, d)
		}
	}
	if at.node < len(nodes) {
		page.Next = at.encode(fingerprint)
	}
	return page, nil
}

// scanNodes are the nodes a listing SCANs, in a fixed order, and a
// fingerprint of them: the masters of a Cluster by address, or the one
// server.
func (s *Store) scanNodes(ctx context.Context) ([]redis.Cmdable, uint64, error) {
	cc, ok := s.c.rdb.(*redis.ClusterClient)
	if !ok {
		return []redis.Cmdable{s.c.rdb}, 0, nil
	}
	var mu sync.Mutex
	var masters []*redis.Client
	err := cc.ForEachMaster(ctx, func(_ context.Context, node *redis.Client) error {
		mu.Lock()
		defer mu.Unlock()
		masters = append(masters, node)
		return nil
	})
	if err != nil {
		return nil, 0, unavailable("cluster masters", err)
	}
	slices.SortFunc(masters, func(a, b *redis.Client) int { return strings.Compare(a.Options().Addr, b.Options().Addr) })
	h := fnv.New64a()
	nodes := make([]redis.Cmdable, len(masters))
	for i, m := range masters {
		h.Write([]byte(m.Options().Addr + "\n"))
		nodes[i] = m
	}
	return nodes, h.Sum64(), nil
}

// listCursor is where a listing stands: SCAN cursor scan on node.
type listCursor struct {
	node int
	scan uint64
}

// encode is the cursor as the admin API shows it: base64url of the node's
// index and the SCAN cursor (uvarints) and the nodes' fingerprint.
func (c listCursor) encode(fingerprint uint64) string {
	b := binary.AppendUvarint(nil, uint64(c.node))
	b = binary.AppendUvarint(b, c.scan)
	b = binary.BigEndian.AppendUint64(b, fingerprint)
	return base64.RawURLEncoding.EncodeToString(b)
}

// parseListCursor reads a cursor made by encode for the nodes listed now;
// "" is the first page's.
func parseListCursor(s string, fingerprint uint64, nodes int) (listCursor, error) {
	if s == "" {
		return listCursor{}, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return listCursor{}, err
	}
	node, n := binary.Uvarint(b)
	if n <= 0 || node >= uint64(nodes) {
		return listCursor{}, flow.ErrBadCursor
	}
	b = b[n:]
	scan, n := binary.Uvarint(b)
	if n <= 0 || len(b[n:]) != 8 || binary.BigEndian.Uint64(b[n:]) != fingerprint {
		return listCursor{}, flow.ErrBadCursor
	}
	return listCursor{node: int(node), scan: scan}, nil
}

// getAll reads keys in one pipeline; a key that is gone reads as nil.
func getAll(ctx context.Context, rdb redis.UniversalClient, keys []string) ([]*string, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	pipe := rdb.Pipeline()
	gets := make([]*redis.StringCmd, len(keys))
	for i, k := range keys {
		gets[i] = pipe.Get(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, unavailable("read", err)
	}
	values := make([]*string, len(keys))
	for i, get := range gets {
		raw, err := get.Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, unavailable("read", err)
		}
		values[i] = &raw
	}
	return values, nil
}

// walk SCANs for the keys that start with prefix (MATCH <prefix>*), for
// Counters (a namespace's few counters: it remembers every key it gave),
// and reads them, a batch per SCAN call in one pipeline, handing each key and
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
	values, err := getAll(ctx, w.rdb, keys)
	if err != nil {
		return err
	}
	for i, raw := range values {
		if raw != nil && !w.give(keys[i], *raw) {
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
