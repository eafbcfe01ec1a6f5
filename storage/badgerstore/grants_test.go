package badgerstore

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
	"github.com/caddy-device-flow/caddy-device-flow/storage/storetest"
)

// Records name their (client_id, scope) pair by number: each pair is
// written once, records are that much smaller, and they read back whole,
// also after a reopen. Past the table's size, records hold the strings.
func TestGrantsNumberPairs(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	s.grants.max = 3
	ctx := t.Context()
	var devs []*flow.Device
	for i := range 5 { // clients 0-2 get numbers, 3 and 4 do not
		for range 4 {
			d := storetest.NewDevice(10 * time.Minute)
			d.ClientID, d.Scope = fmt.Sprintf("tv-%d", i), "openid profile email offline_access"
			if err := s.CreateDevice(ctx, d); err != nil {
				t.Fatal(err)
			}
			devs = append(devs, d)
		}
	}
	raw := func(s *Store, d *flow.Device) (value []byte) {
		err := s.db.View(func(txn *badger.Txn) error {
			item, err := txn.Get(deviceKey(d.ID))
			if err != nil {
				return err
			}
			value, err = item.ValueCopy(nil)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return value
	}
	for i, d := range devs {
		v := raw(s, d)
		numbered := i < 12
		if got := v[1]&grantFlag != 0; got != numbered {
			t.Fatalf("device of %s: names a grant %v, want %v", d.ClientID, got, numbered)
		}
		if numbered && (bytes.Contains(v, []byte(d.Scope)) || len(v) >= len(encodeDevice(d))-len(d.Scope)) {
			t.Fatalf("device of %s: the record (%d bytes) holds the strings anyway", d.ClientID, len(v))
		}
	}
	if n := len(s.grants.snap.Load().pairs); n != 3 {
		t.Fatalf("%d pairs numbered, want 3", n)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	again := open(t, Options{Dir: dir})
	for _, d := range devs {
		err := again.UpdateDevice(ctx, d.ID, func(got *flow.Device) (flow.Verdict, error) {
			if got == nil || got.ClientID != d.ClientID || got.Scope != d.Scope {
				t.Errorf("after a reopen, %s's device reads back as %+v", d.ClientID, got)
			}
			return flow.Keep, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// A pair seen before the reopen keeps its number.
	if n := again.grants.number("tv-1", "openid profile email offline_access"); n != 1 {
		t.Fatalf("tv-1's pair is number %d after a reopen, want 1", n)
	}
}

// A record naming a grant the table does not hold is corrupt, not a
// device with an empty client (which no client could then poll for).
func TestGrantUnknownIsCorrupt(t *testing.T) {
	d := storetest.NewDevice(time.Hour)
	b := appendDevice(nil, d, 7)
	for name, g := range map[string]*grantTable{"no table": nil, "an empty table": emptyGrants()} {
		if got, err := decodeDevice(d.ID, b, g); err == nil {
			t.Fatalf("%s: decoded %+v", name, got)
		}
	}
	g := emptyGrants()
	g.snap.Load().pairs = make([]grantPair, 8)
	g.snap.Load().pairs[7] = grantPair{d.ClientID, d.Scope}
	got, err := decodeDevice(d.ID, b, g)
	if err != nil || got.ClientID != d.ClientID || got.Scope != d.Scope || got.UserCode != d.UserCode {
		t.Fatalf("with the grant: %+v, %v", got, err)
	}
}

func emptyGrants() *grantTable {
	g := &grantTable{max: maxGrants}
	g.snap.Store(&grantSnapshot{numbers: map[grantPair]int{}})
	return g
}
