package storetest

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// memStore is a minimal reference implementation that lets the suite test
// itself. Its UpdateDevice runs fn outside the lock and compares versions,
// like the optimistic backends do, so the suite's retry tests mean something.
type memStore struct {
	grace time.Duration

	mu      sync.Mutex
	devices map[string]memDevice
	codes   map[string]string
	logins  map[string][]byte
	loginEx map[string]time.Time
	hits    map[string]int64
	hitEx   map[string]time.Time
	secrets map[string][]byte
}

type memDevice struct {
	data    []byte
	version int
	expires time.Time
}

func newMemStore(grace time.Duration) *memStore {
	return &memStore{
		grace:   grace,
		devices: map[string]memDevice{},
		codes:   map[string]string{},
		logins:  map[string][]byte{},
		loginEx: map[string]time.Time{},
		hits:    map[string]int64{},
		hitEx:   map[string]time.Time{},
		secrets: map[string][]byte{},
	}
}

// device returns the live record under id; call with mu held.
func (s *memStore) device(id string) (memDevice, bool) {
	d, ok := s.devices[id]
	if ok && time.Now().After(d.expires) {
		delete(s.devices, id)
		var rec flow.Device
		json.Unmarshal(d.data, &rec)
		if s.codes[rec.UserCode] == id {
			delete(s.codes, rec.UserCode)
		}
		return memDevice{}, false
	}
	return d, ok
}

func (s *memStore) CreateDevice(_ context.Context, rec *flow.Device) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if id, ok := s.codes[rec.UserCode]; ok {
		if _, live := s.device(id); live {
			return flow.ErrUserCodeTaken
		}
	}
	s.codes[rec.UserCode] = rec.ID
	s.devices[rec.ID] = memDevice{data: data, version: 1, expires: rec.ExpiresAt.Add(s.grace)}
	return nil
}

func (s *memStore) DeviceByUserCode(_ context.Context, code string) (*flow.Device, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.codes[code]
	if !ok {
		return nil, flow.ErrNotFound
	}
	d, ok := s.device(id)
	if !ok {
		return nil, flow.ErrNotFound
	}
	var rec flow.Device
	return &rec, json.Unmarshal(d.data, &rec)
}

func (s *memStore) UpdateDevice(_ context.Context, id string, fn func(*flow.Device) (flow.Verdict, error)) error {
	for {
		s.mu.Lock()
		d, ok := s.device(id)
		s.mu.Unlock()
		var rec *flow.Device
		if ok {
			rec = new(flow.Device)
			if err := json.Unmarshal(d.data, rec); err != nil {
				return err
			}
		}
		time.Sleep(time.Microsecond) // widen the window for conflicts
		v, fnErr := fn(rec)
		if rec == nil || v == flow.Keep {
			return fnErr
		}
		s.mu.Lock()
		cur, ok := s.device(id)
		if !ok || cur.version != d.version {
			s.mu.Unlock()
			continue
		}
		switch v {
		case flow.Save:
			data, err := json.Marshal(rec)
			if err != nil {
				s.mu.Unlock()
				return err
			}
			s.devices[id] = memDevice{data: data, version: d.version + 1, expires: rec.ExpiresAt.Add(s.grace)}
		case flow.Delete:
			delete(s.devices, id)
			if s.codes[rec.UserCode] == id {
				delete(s.codes, rec.UserCode)
			}
		}
		s.mu.Unlock()
		return fnErr
	}
}

func (s *memStore) PutLogin(_ context.Context, key string, l *flow.Login) error {
	data, err := json.Marshal(l)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.logins[key] = data
	s.loginEx[key] = l.ExpiresAt
	return nil
}

func (s *memStore) TakeLogin(_ context.Context, key string) (*flow.Login, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	data, ok := s.logins[key]
	live := ok && time.Now().Before(s.loginEx[key])
	delete(s.logins, key)
	delete(s.loginEx, key)
	if !live {
		return nil, flow.ErrNotFound
	}
	var l flow.Login
	return &l, json.Unmarshal(data, &l)
}

func (s *memStore) count(key string) int64 {
	if time.Now().After(s.hitEx[key]) {
		delete(s.hits, key)
		delete(s.hitEx, key)
	}
	return s.hits[key]
}

func (s *memStore) Hit(_ context.Context, key string, ttl time.Duration) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.count(key) == 0 {
		s.hitEx[key] = time.Now().Add(ttl)
	}
	s.hits[key]++
	return s.hits[key], nil
}

func (s *memStore) Count(_ context.Context, key string) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count(key), nil
}

func (s *memStore) Secret(_ context.Context, name string, generate func() ([]byte, error)) ([]byte, error) {
	s.mu.Lock()
	v, ok := s.secrets[name]
	s.mu.Unlock()
	if ok {
		return append([]byte(nil), v...), nil
	}
	gen, err := generate()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.secrets[name]; ok {
		return append([]byte(nil), v...), nil
	}
	s.secrets[name] = append([]byte(nil), gen...)
	return gen, nil
}

func TestMemStore(t *testing.T) {
	Run(t, func(t *testing.T) flow.Store { return newMemStore(time.Minute) })
	RunExpiry(t, func(t *testing.T) flow.Store { return newMemStore(ExpiryGrace) }, time.Sleep)
}
