package storetest

import (
	"bytes"
	"cmp"
	"context"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// memBackend is a minimal reference implementation that lets the suite
// test itself. Its UpdateDevice runs fn outside the lock and compares
// versions, like the optimistic backends do, so the suite's retry tests
// mean something.
type memBackend struct {
	grace time.Duration

	mu      sync.Mutex
	devices map[string]memEntry // every map is by namespace + "\x00" + key
	logins  map[string]memEntry
	hits    map[string]memEntry
	secrets map[string][]byte
}

type memEntry struct {
	data    []byte
	n       int64 // hits, or a device's version
	expires time.Time
}

func newMemBackend(grace time.Duration) *memBackend {
	return &memBackend{
		grace:   grace,
		devices: map[string]memEntry{},
		logins:  map[string]memEntry{},
		hits:    map[string]memEntry{},
		secrets: map[string][]byte{},
	}
}

// live returns the unexpired entry under key; call with mu held.
func live(m map[string]memEntry, key string) (memEntry, bool) {
	e, ok := m[key]
	if ok && !time.Now().Before(e.expires) {
		delete(m, key)
		return memEntry{}, false
	}
	return e, ok
}

type memStore struct {
	b  *memBackend
	ns string
}

func (s memStore) key(k string) string { return s.ns + "\x00" + k }

func (s memStore) CreateDevice(_ context.Context, rec *flow.Device) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	k := s.key(rec.UserCode)
	if _, ok := live(s.b.devices, k); ok {
		return flow.ErrUserCodeTaken
	}
	s.b.devices[k] = memEntry{data: data, n: time.Now().UnixNano(), expires: rec.ExpiresAt.Add(s.b.grace)}
	return nil
}

func (s memStore) DeviceByUserCode(_ context.Context, code string) (*flow.Device, error) {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	e, ok := live(s.b.devices, s.key(code))
	if !ok {
		return nil, flow.ErrNotFound
	}
	var rec flow.Device
	return &rec, json.Unmarshal(e.data, &rec)
}

func (s memStore) UpdateDevice(_ context.Context, code string, fn func(*flow.Device) (flow.Verdict, error)) error {
	k := s.key(code)
	for {
		s.b.mu.Lock()
		e, ok := live(s.b.devices, k)
		s.b.mu.Unlock()
		var rec *flow.Device
		if ok {
			rec = new(flow.Device)
			if err := json.Unmarshal(e.data, rec); err != nil {
				return err
			}
		}
		time.Sleep(time.Microsecond) // widen the window for conflicts
		v, fnErr := fn(rec)
		if rec == nil || v == flow.Keep {
			return fnErr
		}
		s.b.mu.Lock()
		if cur, ok := live(s.b.devices, k); !ok || cur.n != e.n {
			s.b.mu.Unlock()
			continue
		}
		switch v {
		case flow.Save:
			data, err := json.Marshal(rec)
			if err != nil {
				s.b.mu.Unlock()
				return err
			}
			s.b.devices[k] = memEntry{data: data, n: e.n + 1, expires: rec.ExpiresAt.Add(s.b.grace)}
		case flow.Delete:
			delete(s.b.devices, k)
		}
		s.b.mu.Unlock()
		return fnErr
	}
}

// Devices pages through the namespace's user codes in order; the cursor
// is the last one listed, in hex.
func (s memStore) Devices(_ context.Context, cursor string, limit int) (flow.DevicePage, error) {
	after, err := hex.DecodeString(cursor)
	if err != nil || limit < 1 {
		return flow.DevicePage{}, flow.ErrBadCursor
	}
	s.b.mu.Lock()
	var codes []string
	for k := range s.b.devices {
		code, mine := strings.CutPrefix(k, s.key(""))
		if _, ok := live(s.b.devices, k); ok && mine && code > string(after) {
			codes = append(codes, code)
		}
	}
	slices.Sort(codes)
	var page flow.DevicePage
	if len(codes) > limit {
		codes = codes[:limit]
		page.Next = hex.EncodeToString([]byte(codes[limit-1]))
	}
	data := make([][]byte, len(codes))
	for i, code := range codes {
		data[i] = s.b.devices[s.key(code)].data
	}
	s.b.mu.Unlock()
	for i, code := range codes {
		var rec flow.Device
		if err := json.Unmarshal(data[i], &rec); err != nil {
			page.Unreadable = append(page.Unreadable, code)
			continue
		}
		page.Devices = append(page.Devices, &rec)
	}
	return page, nil
}

func (s memStore) PutLogin(_ context.Context, key string, l *flow.Login) error {
	data, err := json.Marshal(l)
	if err != nil {
		return err
	}
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	s.b.logins[s.key(key)] = memEntry{data: data, expires: l.ExpiresAt}
	return nil
}

func (s memStore) TakeLogin(_ context.Context, key, state string) (*flow.Login, error) {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	e, ok := live(s.b.logins, s.key(key))
	if !ok {
		return nil, flow.ErrNotFound
	}
	var l flow.Login
	if err := json.Unmarshal(e.data, &l); err != nil || l.State != state {
		return nil, cmp.Or(err, flow.ErrNotFound)
	}
	delete(s.b.logins, s.key(key))
	return &l, nil
}

func (s memStore) Tally(_ context.Context, steps ...flow.Tally) ([]int64, error) {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	var out []int64
	for _, st := range steps {
		e, ok := live(s.b.hits, s.key(st.Key))
		if st.TTL > 0 {
			if !ok {
				e.expires = time.Now().Add(st.TTL)
			}
			e.n++
			s.b.hits[s.key(st.Key)] = e
		}
		out = append(out, e.n)
		if st.TTL > 0 && st.Limit > 0 && e.n > st.Limit {
			break
		}
	}
	return out, nil
}

func (s memStore) Counters(_ context.Context, prefix string, fn func(string, int64) bool) error {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	for k := range s.b.hits {
		e, ok := live(s.b.hits, k)
		key, mine := strings.CutPrefix(k, s.key(""))
		if ok && mine && strings.HasPrefix(key, prefix) && !fn(key, e.n) {
			return nil
		}
	}
	return nil
}

func (s memStore) Secret(_ context.Context, name string, generate func() ([]byte, error)) ([]byte, error) {
	s.b.mu.Lock()
	v, ok := s.b.secrets[s.key(name)]
	s.b.mu.Unlock()
	if ok {
		return bytes.Clone(v), nil
	}
	gen, err := generate()
	if err != nil {
		return nil, err
	}
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	if v, ok := s.b.secrets[s.key(name)]; ok {
		return bytes.Clone(v), nil
	}
	s.b.secrets[s.key(name)] = bytes.Clone(gen)
	return gen, nil
}

func TestMemStore(t *testing.T) {
	b := newMemBackend(time.Minute)
	Run(t, func(t *testing.T, ns string) flow.Store { return memStore{b, ns} })
	RunUnreadable(t, func(t *testing.T, ns string) flow.Store { return memStore{b, ns} }, func(t *testing.T, s flow.Store, _, userCode string) {
		m := s.(memStore)
		m.b.mu.Lock()
		defer m.b.mu.Unlock()
		m.b.devices[m.key(userCode)] = memEntry{data: []byte("\x01 not a record"), expires: time.Now().Add(time.Hour)}
	})
	short := newMemBackend(ExpiryGrace)
	RunExpiry(t, func(t *testing.T, ns string) flow.Store { return memStore{short, ns} }, time.Sleep)
}
