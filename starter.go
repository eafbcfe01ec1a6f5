package deviceflow

import (
	"context"
	"errors"
	"sync"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

func init() {
	caddy.RegisterModule(new(starter))
}

// starter is the device_flow app: a config's storage modules that must not
// open their database before the config runs (Badger, whose folder a
// running Caddy holds) open it from its Start. `caddy validate` provisions
// a config but never starts its apps, so it leaves the folder alone; a
// config that fails to start (the folder in use) fails to load, as one
// that fails to provision does. Nobody configures it: the storage module
// that needs it asks for it (ctx.App), and it comes with the config.
type starter struct {
	mu    sync.Mutex
	start []func() error
}

// CaddyModule returns the Caddy module information.
func (*starter) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "device_flow", New: func() caddy.Module { return new(starter) }}
}

// onStart has fn run when the config of ctx starts.
func onStart(ctx caddy.Context, fn func() error) error {
	app, err := ctx.App("device_flow")
	if err != nil {
		return err
	}
	s := app.(*starter)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.start = append(s.start, fn)
	return nil
}

// Start runs what the config's modules put off, stopping at the first
// failure (which fails the config).
func (s *starter) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, fn := range s.start {
		if err := fn(); err != nil {
			return err
		}
	}
	return nil
}

// Stop does nothing: the modules let go of what they opened in Cleanup.
func (*starter) Stop() error { return nil }

// startedStore is a handler's store whose database opens when the config
// starts. The HTTP app may start, and take requests, before the device_flow
// app: a request that comes first waits for the database.
type startedStore struct {
	ready chan struct{} // closed once store is set or will never be
	once  sync.Once
	store flow.Store // nil when the config never started
}

func newStartedStore() *startedStore { return &startedStore{ready: make(chan struct{})} }

// set gives the store its database (nil: none will come).
func (s *startedStore) set(store flow.Store) {
	s.once.Do(func() { s.store = store; close(s.ready) })
}

var errNotStarted = errors.New("the device_flow database is not open: its config did not start")

// do runs fn on the store once it is open.
func (s *startedStore) do(ctx context.Context, fn func(flow.Store) error) error {
	select {
	case <-s.ready:
	default:
		select {
		case <-s.ready:
		case <-ctx.Done():
			return errors.Join(flow.ErrUnavailable, ctx.Err())
		}
	}
	if s.store == nil {
		return errors.Join(flow.ErrUnavailable, errNotStarted)
	}
	return fn(s.store)
}

func (s *startedStore) CreateDevice(ctx context.Context, d *flow.Device) error {
	return s.do(ctx, func(st flow.Store) error { return st.CreateDevice(ctx, d) })
}

func (s *startedStore) DeviceByUserCode(ctx context.Context, userCode string) (d *flow.Device, err error) {
	err = s.do(ctx, func(st flow.Store) error { d, err = st.DeviceByUserCode(ctx, userCode); return err })
	return d, err
}

func (s *startedStore) UpdateDevice(ctx context.Context, userCode string, fn func(*flow.Device) (flow.Verdict, error)) error {
	return s.do(ctx, func(st flow.Store) error { return st.UpdateDevice(ctx, userCode, fn) })
}

func (s *startedStore) Devices(ctx context.Context, cursor string, limit int) (p flow.DevicePage, err error) {
	err = s.do(ctx, func(st flow.Store) error { p, err = st.Devices(ctx, cursor, limit); return err })
	return p, err
}

func (s *startedStore) PutLogin(ctx context.Context, key string, login *flow.Login) error {
	return s.do(ctx, func(st flow.Store) error { return st.PutLogin(ctx, key, login) })
}

func (s *startedStore) TakeLogin(ctx context.Context, key, state string) (l *flow.Login, err error) {
	err = s.do(ctx, func(st flow.Store) error { l, err = st.TakeLogin(ctx, key, state); return err })
	return l, err
}

func (s *startedStore) Tally(ctx context.Context, steps ...flow.Tally) (n []int64, err error) {
	err = s.do(ctx, func(st flow.Store) error { n, err = st.Tally(ctx, steps...); return err })
	return n, err
}

func (s *startedStore) Counters(ctx context.Context, prefix string, fn func(key string, value int64) bool) error {
	return s.do(ctx, func(st flow.Store) error { return st.Counters(ctx, prefix, fn) })
}

func (s *startedStore) Secret(ctx context.Context, name string, generate func() ([]byte, error)) (b []byte, err error) {
	err = s.do(ctx, func(st flow.Store) error { b, err = st.Secret(ctx, name, generate); return err })
	return b, err
}

// Interface guards.
var (
	_ caddy.App  = (*starter)(nil)
	_ flow.Store = (*startedStore)(nil)
)
