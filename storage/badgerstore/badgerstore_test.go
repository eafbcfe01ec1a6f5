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
