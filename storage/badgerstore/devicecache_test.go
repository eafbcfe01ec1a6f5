package badgerstore

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
	"github.com/caddy-device-flow/caddy-device-flow/storage/storetest"
)

// poll moves only the poll fields, as a pending poll does.
func poll(at time.Time, retried bool) func(*flow.Device) (flow.Verdict, error) {
	return func(d *flow.Device) (flow.Verdict, error) {
		d.LastPoll, d.Retried = at, retried
		return flow.Save, nil
	}
}

// inBadger reads the record as Badger has it, bypassing the cache.
func inBadger(t *testing.T, s *Store, id string) *flow.Device {
	t.Helper()
	var d *flow.Device
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		d, err = getDevice(txn, id)
		return err
	})
	if err != nil {
		t.Fatalf("reading %s from Badger: %v", id, err)
	}
	return d
}

func mustUpdate(t *testing.T, s *Store, id string, fn func(*flow.Device) (flow.Verdict, error)) {
	t.Helper()
	if err := s.UpdateDevice(context.Background(), id, fn); err != nil {
		t.Fatal(err)
	}
}

func TestPollOnlyUpdatesStayInMemoryUntilClose(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d := storetest.NewDevice(time.Hour)
	if err := s.CreateDevice(ctx, d); err != nil {
		t.Fatal(err)
	}
	at := time.Now().Round(0)
	mustUpdate(t, s, d.ID, poll(at, true))

	if got := inBadger(t, s, d.ID); !got.LastPoll.IsZero() {
		t.Errorf("a poll-only update was written to Badger: LastPoll %v", got.LastPoll)
	}
	got, err := s.DeviceByUserCode(ctx, d.UserCode)
	if err != nil || !got.LastPoll.Equal(at) || !got.Retried {
		t.Fatalf("DeviceByUserCode = %+v, %v; want the cached LastPoll %v and Retried", got, err, at)
	}

	// Anything else is written through at once, poll fields included.
	mustUpdate(t, s, d.ID, func(d *flow.Device) (flow.Verdict, error) {
		d.Interval += 5 * time.Second
		return flow.Save, nil
	})
	if got := inBadger(t, s, d.ID); !got.LastPoll.Equal(at) || got.Interval != d.Interval+5*time.Second {
		t.Errorf("after slow_down Badger has LastPoll %v, Interval %v", got.LastPoll, got.Interval)
	}

	// A dirty entry reaches Badger at Close.
	later := at.Add(3 * time.Second)
	mustUpdate(t, s, d.ID, poll(later, false))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, Options{Dir: dir, GCInterval: -1})
	if got := inBadger(t, s, d.ID); !got.LastPoll.Equal(later) || got.Retried {
		t.Errorf("after reopening, LastPoll %v Retried %v; want %v false", got.LastPoll, got.Retried, later)
	}
}

// More codes than the cache holds: those that do not fit are updated in
// Badger directly, and every code reads back its own LastPoll.
func TestFullCacheKeepsPollTimes(t *testing.T) {
	s := open(t, Options{Dir: t.TempDir(), GCInterval: -1})
	s.cache.perShard = 2
	ctx := context.Background()
	base := time.Now().Round(0)
	var ids []string
	for i := range 500 {
		d := storetest.NewDevice(time.Hour)
		if err := s.CreateDevice(ctx, d); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, d.ID)
		mustUpdate(t, s, d.ID, poll(base.Add(time.Duration(i)*time.Millisecond), false))
	}
	cached := 0
	for i := range s.cache.shards {
		cached += len(s.cache.shards[i].m)
	}
	if cached > cacheShards*2 {
		t.Errorf("%d entries cached, more than 2 per shard", cached)
	}
	for i, id := range ids {
		want := base.Add(time.Duration(i) * time.Millisecond)
		mustUpdate(t, s, id, func(d *flow.Device) (flow.Verdict, error) {
			if !d.LastPoll.Equal(want) {
				t.Errorf("code %d: LastPoll %v, want %v", i, d.LastPoll, want)
			}
			return flow.Keep, nil
		})
	}
}

// Deleting through the cache deletes in Badger, user code included.
func TestCachedDeleteReachesBadger(t *testing.T) {
	s := open(t, Options{InMemory: true})
	ctx := context.Background()
	d := storetest.NewDevice(time.Hour)
	if err := s.CreateDevice(ctx, d); err != nil {
		t.Fatal(err)
	}
	mustUpdate(t, s, d.ID, poll(time.Now(), false))
	mustUpdate(t, s, d.ID, func(*flow.Device) (flow.Verdict, error) { return flow.Delete, nil })
	err := s.db.View(func(txn *badger.Txn) error {
		for _, k := range []string{devicePrefix + d.ID, userCodePrefix + d.UserCode} {
			if _, err := txn.Get([]byte(k)); err != badger.ErrKeyNotFound {
				t.Errorf("%s after Delete: %v", k, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// onlyPollMoved must notice a change to any field but LastPoll and
// Retried; a field added to flow.Device and not compared there would be
// kept in memory only.
func TestOnlyPollMovedSeesEveryField(t *testing.T) {
	base := *storetest.NewDevice(time.Hour)
	base.Sealed = []byte("sealed")
	base.Reason = "r"
	typ := reflect.TypeOf(base)
	for i := range typ.NumField() {
		name := typ.Field(i).Name
		changed := base
		f := reflect.ValueOf(&changed).Elem().Field(i)
		switch v := f.Addr().Interface().(type) {
		case *string:
			*v += "x"
		case *time.Time:
			*v = v.Add(time.Nanosecond)
		case *time.Duration:
			*v++
		case *flow.Status:
			*v++
		case *bool:
			*v = !*v
		case *[]byte:
			*v = append([]byte("x"), *v...)
		default:
			t.Fatalf("flow.Device.%s: this test cannot change a %s; teach it, and onlyPollMoved", name, f.Type())
		}
		pollField := name == "LastPoll" || name == "Retried"
		if got := onlyPollMoved(&base, &changed); got != pollField {
			t.Errorf("changing %s: onlyPollMoved = %v, want %v", name, got, pollField)
		}
	}
}
