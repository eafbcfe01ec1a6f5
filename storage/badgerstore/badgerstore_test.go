package badgerstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
	"github.com/caddy-device-flow/caddy-device-flow/storage/record"
	"github.com/caddy-device-flow/caddy-device-flow/storage/storetest"
)

func openDB(t testing.TB, o Options) *DB {
	t.Helper()
	db, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func opener(db *DB) storetest.Open {
	return func(_ *testing.T, namespace string) flow.Store { return db.Store(namespace) }
}

func TestConformanceInMemory(t *testing.T) {
	storetest.Run(t, opener(openDB(t, Options{InMemory: true})))
}

func TestConformanceOnDisk(t *testing.T) {
	db := openDB(t, Options{Dir: t.TempDir()})
	storetest.Run(t, opener(db))
	storetest.RunUnreadable(t, opener(db), func(t *testing.T, s flow.Store, _, userCode string) {
		bs := s.(*Store)
		err := bs.db.bdb.Update(func(txn *badger.Txn) error {
			return txn.Set(bs.ns.key(kindDevice, userCode), []byte("\x01 not a record"))
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

func TestExpiry(t *testing.T) {
	storetest.RunExpiry(t, opener(openDB(t, Options{InMemory: true, Grace: storetest.ExpiryGrace})), time.Sleep)
}

// stored is the record under the user code as Badger holds it, without
// the poll memory; nil when there is none.
func stored(t *testing.T, s *Store, userCode string) *flow.Device {
	t.Helper()
	var d *flow.Device
	err := s.db.bdb.View(func(txn *badger.Txn) (err error) {
		d, _, err = readDevice(txn, s.ns.key(kindDevice, userCode), userCode)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func mustUpdate(t *testing.T, s *Store, userCode string, verdict flow.Verdict, change func(d *flow.Device)) *flow.Device {
	t.Helper()
	var seen *flow.Device
	err := s.UpdateDevice(t.Context(), userCode, func(d *flow.Device) (flow.Verdict, error) {
		if d == nil {
			return flow.Keep, errors.New("no record")
		}
		c := *d
		seen = &c
		change(d)
		return verdict, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return seen
}

func poll(at time.Time) func(d *flow.Device) { return func(d *flow.Device) { d.LastPoll = at } }

// Pending polls stay in memory; any other change writes the whole record,
// with the newest poll fields, and fn always sees those.
func TestPollMemory(t *testing.T) {
	s := openDB(t, Options{InMemory: true}).Store("h")
	d := storetest.NewDevice(10 * time.Minute)
	if err := s.CreateDevice(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	t1, t2 := time.Now(), time.Now().Add(5*time.Second)
	mustUpdate(t, s, d.UserCode, flow.Save, poll(t1))
	mustUpdate(t, s, d.UserCode, flow.Save, func(d *flow.Device) { d.Retried = true })
	if got := stored(t, s, d.UserCode); !got.LastPoll.IsZero() || got.Retried {
		t.Fatalf("a pending poll was written to Badger: LastPoll %v, Retried %v", got.LastPoll, got.Retried)
	}
	seen := mustUpdate(t, s, d.UserCode, flow.Save, poll(t2))
	if !seen.LastPoll.Equal(t1) || !seen.Retried {
		t.Fatalf("fn saw LastPoll %v, Retried %v; want %v, true", seen.LastPoll, seen.Retried, t1)
	}
	// Approval leaves the poll fields alone: they are written with it.
	mustUpdate(t, s, d.UserCode, flow.Save, func(d *flow.Device) { d.Status = flow.Approved })
	got := stored(t, s, d.UserCode)
	if got.Status != flow.Approved || !got.LastPoll.Equal(t2) || !got.Retried {
		t.Fatalf("Badger holds status %v, LastPoll %v, Retried %v; want approved, %v, true", got.Status, got.LastPoll, got.Retried, t2)
	}
	if n := entries(s.db); n != 0 {
		t.Fatalf("%d poll entries after the record was written, want 0", n)
	}
}

// A record that left Badger by itself (its time ran out) and is created
// again under its user code has none of the old one's polls.
func TestPollMemoryForgetsExpiredRecords(t *testing.T) {
	s := openDB(t, Options{InMemory: true}).Store("h")
	d := storetest.NewDevice(10 * time.Minute)
	if err := s.CreateDevice(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	mustUpdate(t, s, d.UserCode, flow.Save, poll(time.Now()))
	// As if Badger's TTL had dropped it.
	if err := s.db.bdb.Update(func(txn *badger.Txn) error { return txn.Delete(s.ns.key(kindDevice, d.UserCode)) }); err != nil {
		t.Fatal(err)
	}
	again := storetest.NewDevice(10 * time.Minute)
	again.UserCode = d.UserCode
	if err := s.CreateDevice(t.Context(), again); err != nil {
		t.Fatal(err)
	}
	if seen := mustUpdate(t, s, d.UserCode, flow.Keep, func(*flow.Device) {}); !seen.LastPoll.IsZero() {
		t.Fatalf("the new record inherited LastPoll %v", seen.LastPoll)
	}
}

func entries(db *DB) (n int) {
	for i := range db.polls.shards {
		sh := &db.polls.shards[i]
		sh.mu.Lock()
		for _, m := range sh.byMinute {
			n += len(m)
		}
		sh.mu.Unlock()
	}
	return n
}

// The sweep drops the entries of records gone from Badger (within the
// minute), and no other.
func TestSweepPolls(t *testing.T) {
	db := openDB(t, Options{InMemory: true, Grace: time.Minute})
	s := db.Store("h")
	short, long := storetest.NewDevice(time.Minute), storetest.NewDevice(time.Hour)
	for _, d := range []*flow.Device{short, long} {
		if err := s.CreateDevice(t.Context(), d); err != nil {
			t.Fatal(err)
		}
		mustUpdate(t, s, d.UserCode, flow.Save, poll(time.Now()))
	}
	tests := []struct {
		at   time.Time
		want int
	}{
		{time.Now(), 2},
		{short.ExpiresAt.Add(time.Minute - time.Second), 2}, // in its grace period
		// Entries go by the minute: within a minute after their records.
		{short.ExpiresAt.Add(2*time.Minute + time.Second), 1},
		{long.ExpiresAt.Add(2*time.Minute + time.Second), 0},
	}
	for _, tc := range tests {
		db.sweep(tc.at)
		if n := entries(db); n != tc.want {
			t.Fatalf("after a sweep at %v: %d entries, want %d", tc.at, n, tc.want)
		}
	}
}

func TestPollKey(t *testing.T) {
	tests := []struct {
		ns       uint64
		userCode string
		ok       bool
	}{
		{1, "BCDFGHJK", true},
		{1, "123456789", true},
		{1, "ZZZZZZZZZZ", true},
		{1<<namespaceBits - 1, "ZZZZZZZZZZ", true},
		{1, "A", true},
		{1, "0A", true},
		{1, "00A", true},
		{2, "A", true},
		{1, "ZZZZZZZZZZZ", false}, // 11 characters
		{1, "", false},
		{1, "abc", false}, // not normalized
		{0, "A", false},   // no number
	}
	seen := map[uint64]string{}
	for _, tc := range tests {
		k, ok := pollKey(tc.ns, tc.userCode)
		if ok != tc.ok {
			t.Errorf("pollKey(%d, %q) ok = %v, want %v", tc.ns, tc.userCode, ok, tc.ok)
		}
		if !ok {
			continue
		}
		if back, ok := unpackUserCode(k); !ok || back != tc.userCode {
			t.Errorf("unpackUserCode(pollKey(%d, %q)) = %q, %v", tc.ns, tc.userCode, back, ok)
		}
		if k>>(64-namespaceBits) != tc.ns {
			t.Errorf("pollKey(%d, %q) = %x: the namespace does not survive", tc.ns, tc.userCode, k)
		}
		name := fmt.Sprint(tc.ns, "/", tc.userCode)
		if other, dup := seen[k]; dup {
			t.Errorf("%s and %s pack alike: %x", name, other, k)
		}
		seen[k] = name
	}
	p := newPolls()
	for i := range 1<<namespaceBits - 1 {
		if n := p.number(newNamespace(fmt.Sprint(i))); n != uint64(i+1) {
			t.Fatalf("namespace %d got number %d", i, n)
		}
	}
	if n := p.number(newNamespace("one too many")); n != 0 {
		t.Fatalf("a namespace past the last number got %d", n)
	}
	if n := p.number(newNamespace("7")); n != 8 {
		t.Fatalf("a namespace seen before got %d, want its number 8", n)
	}
}

// A record whose key does not pack has its polls written to Badger.
func TestPollsOfLongUserCodesAreWritten(t *testing.T) {
	s := openDB(t, Options{InMemory: true}).Store("h")
	d := storetest.NewDevice(10 * time.Minute)
	d.UserCode = "ABCDEFGHIJKLMNOP"
	if err := s.CreateDevice(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	t1 := time.Now()
	mustUpdate(t, s, d.UserCode, flow.Save, poll(t1))
	if got := stored(t, s, d.UserCode); !got.LastPoll.Equal(t1) {
		t.Fatalf("Badger holds LastPoll %v, want %v", got.LastPoll, t1)
	}
	if n := entries(s.db); n != 0 {
		t.Fatalf("%d poll entries, want 0", n)
	}
}

// Reopening the folder keeps records, written poll fields, logins,
// counters and secrets, each in its namespace; the polls kept in memory
// are forgotten (polls.go).
func TestReopen(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	s, other := db.Store("h"), db.Store("other")
	written, inMemory := storetest.NewDevice(10*time.Minute), storetest.NewDevice(10*time.Minute)
	t1 := time.Now()
	for _, d := range []*flow.Device{written, inMemory} {
		if err := s.CreateDevice(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	mustUpdate(t, s, written.UserCode, flow.Save, func(d *flow.Device) { d.LastPoll, d.Interval = t1, 10*time.Second })
	mustUpdate(t, s, inMemory.UserCode, flow.Save, poll(t1))
	login := &flow.Login{UserCode: written.UserCode, CodeHash: written.CodeHash, Verifier: "v", Browser: "b", ExpiresAt: time.Now().Add(time.Hour)}
	if err := s.PutLogin(ctx, "l", login); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := storetest.Hit(ctx, s, "k", time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	secret, err := s.Secret(ctx, "mac", func() ([]byte, error) { return []byte("first"), nil })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Secret(ctx, "mac", func() ([]byte, error) { return []byte("other"), nil }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s = openDB(t, Options{Dir: dir}).Store("h")
	if got, err := s.DeviceByUserCode(ctx, written.UserCode); err != nil || !got.LastPoll.Equal(t1) || got.Interval != 10*time.Second || !bytes.Equal(got.CodeHash, written.CodeHash) {
		t.Fatalf("the written record after reopening: %+v, %v", got, err)
	}
	// Close writes what the poll memory held: a stop forgets no poll.
	if got, err := s.DeviceByUserCode(ctx, inMemory.UserCode); err != nil || !got.LastPoll.Equal(t1) {
		t.Fatalf("the record polled in memory after reopening: %+v, %v; want LastPoll %v", got, err, t1)
	}
	if got, err := s.TakeLogin(ctx, "l", ""); err != nil || got.Verifier != "v" {
		t.Fatalf("the login after reopening: %+v, %v", got, err)
	}
	if n, err := storetest.Hit(ctx, s, "k", time.Hour); err != nil || n != 4 {
		t.Fatalf("a hit after reopening: %d, %v; want 4", n, err)
	}
	again, err := s.Secret(ctx, "mac", func() ([]byte, error) { return []byte("second"), nil })
	if err != nil || !bytes.Equal(again, secret) {
		t.Fatalf("the secret after reopening: %q, %v; want %q", again, err, secret)
	}
}

// Hits reach Badger within a flush, without the store being closed.
func TestCountersAreWrittenBehind(t *testing.T) {
	db := openDB(t, Options{InMemory: true})
	s := db.Store("h")
	for range 5 {
		if _, err := storetest.Hit(t.Context(), s, "k", time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.flushCounters(time.Now()); err != nil {
		t.Fatal(err)
	}
	var n uint64
	err := db.bdb.View(func(txn *badger.Txn) error {
		item, err := txn.Get(s.ns.key(kindCounter, "k"))
		if err != nil {
			return err
		}
		return item.Value(func(b []byte) error { n = binary.BigEndian.Uint64(b); return nil })
	})
	if err != nil || n != 5 {
		t.Fatalf("Badger holds %d, %v; want 5", n, err)
	}
	// The sweep drops the counter from memory once its window has
	// passed; Badger has dropped it by then too.
	db.sweep(time.Now().Add(2 * time.Hour))
	sh := db.counters.shard(string(s.ns.key(kindCounter, "k")))
	sh.mu.Lock()
	left := len(sh.m)
	sh.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d counters in memory after their window, want 0", left)
	}
}

// A damaged value is an error that says the store failed, never a panic
// nor a missing record.
func TestCorruptValues(t *testing.T) {
	db := openDB(t, Options{InMemory: true})
	s := db.Store("h")
	err := db.bdb.Update(func(txn *badger.Txn) error {
		return errors.Join(
			txn.Set(s.ns.key(kindDevice, "BAD"), []byte{record.Format, 0, 0xFF}),
			txn.Set(s.ns.key(kindLogin, "bad"), []byte("{not json")))
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeviceByUserCode(t.Context(), "BAD"); !errors.Is(err, flow.ErrUnavailable) {
		t.Errorf("DeviceByUserCode: %v, want ErrUnavailable", err)
	}
	err = s.UpdateDevice(t.Context(), "BAD", func(*flow.Device) (flow.Verdict, error) {
		t.Error("fn called on a corrupt record")
		return flow.Keep, nil
	})
	if !errors.Is(err, flow.ErrUnavailable) {
		t.Errorf("UpdateDevice: %v, want ErrUnavailable", err)
	}
	if _, err := s.TakeLogin(t.Context(), "bad", ""); !errors.Is(err, flow.ErrUnavailable) {
		t.Errorf("TakeLogin: %v, want ErrUnavailable", err)
	}
}

// Once the database is closed, every call fails as unavailable; Close
// again is harmless.
func TestClosed(t *testing.T) {
	db, err := Open(Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	s := db.Store("h")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("a second Close: %v", err)
	}
	ctx := t.Context()
	d := storetest.NewDevice(time.Minute)
	calls := map[string]func() error{
		"CreateDevice": func() error { return s.CreateDevice(ctx, d) },
		"DeviceByUserCode": func() error {
			_, err := s.DeviceByUserCode(ctx, d.UserCode)
			return err
		},
		"UpdateDevice": func() error {
			return s.UpdateDevice(ctx, d.UserCode, func(*flow.Device) (flow.Verdict, error) { return flow.Keep, nil })
		},
		"PutLogin": func() error { return s.PutLogin(ctx, "l", &flow.Login{}) },
		"TakeLogin": func() error {
			_, err := s.TakeLogin(ctx, "l", "")
			return err
		},
		"Secret": func() error {
			_, err := s.Secret(ctx, "mac", func() ([]byte, error) { return []byte("x"), nil })
			return err
		},
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, flow.ErrUnavailable) {
			t.Errorf("%s on a closed database: %v, want ErrUnavailable", name, err)
		}
	}
}
