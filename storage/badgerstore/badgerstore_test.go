package badgerstore

import (
	"testing"
	"time"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
	"github.com/caddy-device-flow/caddy-device-flow/storage/storetest"
)

func open(t *testing.T, o Options) *Store {
	t.Helper()
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformanceInMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) flow.Store { return open(t, Options{InMemory: true}) })
}

func TestConformanceOnDisk(t *testing.T) {
	storetest.Run(t, func(t *testing.T) flow.Store { return open(t, Options{Dir: t.TempDir()}) })
}

func TestExpiry(t *testing.T) {
	storetest.RunExpiry(t, func(t *testing.T) flow.Store {
		return open(t, Options{InMemory: true, Grace: storetest.ExpiryGrace})
	}, time.Sleep)
}

// Closing and reopening the database keeps a pending code, its user code
// index, and the server secret.
func TestReopenKeepsState(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	dev := storetest.NewDevice(10 * time.Minute)
	if err := s.CreateDevice(ctx, dev); err != nil {
		t.Fatal(err)
	}
	secret, err := s.Secret(ctx, "k", func() ([]byte, error) { return []byte("first"), nil })
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, Options{Dir: dir})
	got, err := s.DeviceByUserCode(ctx, dev.UserCode)
	if err != nil || got.ID != dev.ID || got.Status != flow.Pending {
		t.Fatalf("after reopening: %+v %v", got, err)
	}
	again, err := s.Secret(ctx, "k", func() ([]byte, error) { return []byte("second"), nil })
	if err != nil || string(again) != string(secret) {
		t.Fatalf("secret after reopening: %q %v, want %q", again, err, secret)
	}
}
