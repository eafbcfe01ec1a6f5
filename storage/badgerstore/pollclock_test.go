package badgerstore

import (
	"context"
	"errors"
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

// inBadger reads the record as Badger has it, without the poll clock;
// nil when there is none.
func inBadger(t *testing.T, s *Store, id string) *flow.Device {
	t.Helper()
	var rec stored
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		rec, err = s.getDevice(txn, id)
		return err
	})
	if errors.Is(err, flow.ErrNotFound) {
		return nil
	}
	if err != nil {
		t.Fatalf("reading %s from Badger: %v", id, err)
	}
	return rec.d
}

func mustUpdate(t *testing.T, s *Store, id string, fn func(*flow.Device) (flow.Verdict, error)) {
	t.Helper()
	if err := s.UpdateDevice(context.Background(), id, fn); err != nil {
		t.Fatal(err)
	}
}

// A pending poll (only LastPoll and Retried move) writes nothing to
// Badger; every other change is written at once, poll fields included.
func TestOnlyPendingPollsStayOutOfBadger(t *testing.T) {
	at := time.Now().Round(0).Add(time.Minute) // after the records' creation
	tests := []struct {
		name   string
		fn     func(*flow.Device) (flow.Verdict, error)
		writes bool
	}{
		{"on-time poll", poll(at, false), false},
		{"forgiven retry", poll(at, true), false},
		{"poll time before the record's", poll(at.Add(-time.Hour), false), true},
		{"nothing moved", func(*flow.Device) (flow.Verdict, error) { return flow.Save, nil }, false},
		{"keep", func(d *flow.Device) (flow.Verdict, error) { d.Status = flow.Approved; return flow.Keep, nil }, false},
		{"slow_down", func(d *flow.Device) (flow.Verdict, error) {
			d.LastPoll, d.Interval = at, d.Interval+5*time.Second
			return flow.Save, nil
		}, true},
		{"first poll saves the seal key", func(d *flow.Device) (flow.Verdict, error) {
			d.LastPoll, d.SealKey = at, []byte("a new seal key")
			return flow.Save, nil
		}, true},
		{"approved", func(d *flow.Device) (flow.Verdict, error) {
			d.Status, d.Sealed = flow.Approved, []byte("tokens")
			return flow.Save, nil
		}, true},
		{"denied", func(d *flow.Device) (flow.Verdict, error) {
			d.Status, d.Reason = flow.Denied, "no"
			return flow.Save, nil
		}, true},
		{"delivered", func(*flow.Device) (flow.Verdict, error) { return flow.Delete, nil }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t, Options{InMemory: true})
			d := storetest.NewDevice(time.Hour)
			if err := s.CreateDevice(context.Background(), d); err != nil {
				t.Fatal(err)
			}
			version := s.db.MaxVersion()
			var want flow.Device
			mustUpdate(t, s, d.ID, func(rec *flow.Device) (flow.Verdict, error) {
				v, err := tc.fn(rec)
				want = *rec
				return v, err
			})
			if wrote := s.db.MaxVersion() != version; wrote != tc.writes {
				t.Fatalf("wrote to Badger: %v, want %v", wrote, tc.writes)
			}
			switch got := inBadger(t, s, d.ID); {
			case tc.name == "delivered":
				if got != nil {
					t.Errorf("Badger still has %+v", got)
				}
			case got == nil:
				t.Errorf("Badger lost the record")
			case tc.writes && (!got.LastPoll.Equal(want.LastPoll) || got.Interval != want.Interval || got.Status != want.Status):
				t.Errorf("Badger has %+v, want %+v", got, want)
			case !tc.writes && (!got.LastPoll.IsZero() || got.Retried):
				t.Errorf("Badger has %+v, want the record as created", got)
			}
			// Whatever went where, the store reads back what fn left.
			if tc.name != "delivered" && tc.name != "keep" {
				mustUpdate(t, s, d.ID, func(rec *flow.Device) (flow.Verdict, error) {
					if !rec.LastPoll.Equal(want.LastPoll) || rec.Retried != want.Retried {
						t.Errorf("read back LastPoll %v Retried %v, want %v %v", rec.LastPoll, rec.Retried, want.LastPoll, want.Retried)
					}
					return flow.Keep, nil
				})
				got, err := s.DeviceByUserCode(context.Background(), d.UserCode)
				if err != nil || !got.LastPoll.Equal(want.LastPoll) || got.Retried != want.Retried {
					t.Errorf("DeviceByUserCode = %+v, %v; want LastPoll %v Retried %v", got, err, want.LastPoll, want.Retried)
				}
			}
		})
	}
}

// After a write-through, Badger's record is the newest: a poll time the
// clock held from before must not be laid over it.
func TestWriteThroughSupersedesTheClock(t *testing.T) {
	s := open(t, Options{InMemory: true})
	d := storetest.NewDevice(time.Hour)
	if err := s.CreateDevice(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Round(0)
	mustUpdate(t, s, d.ID, poll(t0, true)) // clock: t0, retried
	mustUpdate(t, s, d.ID, func(rec *flow.Device) (flow.Verdict, error) {
		rec.Retried, rec.Interval = false, rec.Interval+5*time.Second // written through
		return flow.Save, nil
	})
	mustUpdate(t, s, d.ID, func(rec *flow.Device) (flow.Verdict, error) {
		if !rec.LastPoll.Equal(t0) || rec.Retried {
			t.Errorf("after the write-through: LastPoll %v Retried %v, want %v false", rec.LastPoll, rec.Retried, t0)
		}
		return flow.Keep, nil
	})
}

// flowPoll is the decision flow/token_endpoint.go's poll makes for a
// pending code (its interval check), kept in step with it by hand: it
// returns whether the poll is answered slow_down.
func flowPoll(d *flow.Device, now time.Time) (flow.Verdict, bool) {
	const retryWindow = time.Second
	slack := min(d.Interval/5, time.Second)
	sinceLast := now.Sub(d.LastPoll)
	early := !d.LastPoll.IsZero() && sinceLast < d.Interval-slack
	switch {
	case early && !d.Retried && sinceLast < retryWindow:
		d.Retried = true
		return flow.Save, false
	case early:
		d.LastPoll, d.Retried = now, false
		d.Interval += 5 * time.Second
		return flow.Save, true
	default:
		d.LastPoll, d.Retried = now, false
		return flow.Save, false
	}
}

// A clock too small for the devices polling forgets poll times, and that
// may only ever spare a device a slow_down, never cost it one: every
// device's polls are answered by a store with a tiny clock and by one
// that remembers everything; the tiny one may say slow_down only where
// the other does.
func TestForgettingNeverCostsASlowDown(t *testing.T) {
	tests := []struct {
		name  string
		gaps  []time.Duration // between a device's polls
		tardy bool            // the small store must have forgotten something
	}{
		{"on time", []time.Duration{5 * time.Second, 5 * time.Second, 5 * time.Second}, false},
		{"double sends", []time.Duration{5 * time.Second, 100 * time.Millisecond, 5 * time.Second, 50 * time.Millisecond, 100 * time.Millisecond}, true},
		{"too fast", []time.Duration{2 * time.Second, 2 * time.Second, 2 * time.Second, 9 * time.Second, time.Second}, true},
		{"retry then too fast", []time.Duration{5 * time.Second, 200 * time.Millisecond, 3 * time.Second, 10 * time.Second}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			small := open(t, Options{InMemory: true, PollClock: 1}) // 4 slots a stripe
			full := open(t, Options{InMemory: true, PollClock: 1 << 20})
			const devices = 3000 // ~3 per slot: most are forgotten between polls
			start := time.Now().Round(0)
			ids := make([]string, devices)
			for i := range ids {
				d := storetest.NewDevice(time.Hour)
				d.CreatedAt = start.Add(-time.Minute)
				for _, s := range []*Store{small, full} {
					if err := s.CreateDevice(ctx, d); err != nil {
						t.Fatal(err)
					}
				}
				ids[i] = d.ID
			}
			now := start
			spared := 0
			for _, gap := range append([]time.Duration{0}, tc.gaps...) {
				now = now.Add(gap)
				for i, id := range ids {
					var slowSmall, slowFull bool
					mustUpdate(t, small, id, func(d *flow.Device) (flow.Verdict, error) {
						v, slow := flowPoll(d, now)
						slowSmall = slow
						return v, nil
					})
					mustUpdate(t, full, id, func(d *flow.Device) (flow.Verdict, error) {
						v, slow := flowPoll(d, now)
						slowFull = slow
						return v, nil
					})
					if slowSmall && !slowFull {
						t.Fatalf("device %d after %v: slow_down from the forgetful store only", i, gap)
					}
					if slowFull && !slowSmall {
						spared++
					}
				}
			}
			if tc.tardy && spared == 0 {
				t.Errorf("the small clock forgot nothing that mattered: the test tests nothing")
			}
			t.Logf("%d slow_downs spared by forgetting", spared)
		})
	}
}

// The clock rotates its generations when the young one is full, and
// reads find what either holds.
func TestClockGenerations(t *testing.T) {
	st := &stripe{slots: 8} // 6 entries a generation
	now := time.Now()
	for fp := uint64(1); fp <= 6; fp++ {
		st.set(fp, fp*10, now)
	}
	if st.old.n != 0 || st.young.n != 6 {
		t.Fatalf("young %d old %d after 6 sets, want 6 0", st.young.n, st.old.n)
	}
	st.set(7, 70, now) // the young one is full: rotate
	if st.old.n != 6 || st.young.n != 1 {
		t.Fatalf("young %d old %d after rotating, want 1 6", st.young.n, st.old.n)
	}
	for fp := uint64(1); fp <= 7; fp++ {
		if v, ok := st.get(fp); !ok || v != fp*10 {
			t.Errorf("get(%d) = %d %v after one rotation", fp, v, ok)
		}
	}
	st.set(3, 33, now) // a newer value shadows the old generation's
	if v, _ := st.get(3); v != 33 {
		t.Errorf("get(3) = %d, want the young generation's 33", v)
	}
	for fp := uint64(8); fp <= 13; fp++ { // fill the young one again
		st.set(fp, fp*10, now)
	}
	if _, ok := st.get(1); ok {
		t.Errorf("entry 1 survived two rotations")
	}
	// An idle clock gives its memory back after two ages.
	st.age(now.Add(clockGenerationAge))
	st.age(now.Add(2 * clockGenerationAge))
	if len(st.young.keys)+len(st.old.keys) != 0 {
		t.Errorf("an idle clock keeps %d slots", len(st.young.keys)+len(st.old.keys))
	}
	if _, ok := st.get(13); ok {
		t.Errorf("entry 13 survived two ages")
	}
}

// Deleting deletes in Badger, user code included, and a new record under
// the same ID does not inherit the old one's poll time.
func TestDeleteReachesBadger(t *testing.T) {
	s := open(t, Options{InMemory: true})
	ctx := context.Background()
	d := storetest.NewDevice(time.Hour)
	if err := s.CreateDevice(ctx, d); err != nil {
		t.Fatal(err)
	}
	mustUpdate(t, s, d.ID, poll(time.Now(), false))
	mustUpdate(t, s, d.ID, func(*flow.Device) (flow.Verdict, error) { return flow.Delete, nil })
	err := s.db.View(func(txn *badger.Txn) error {
		for _, k := range [][]byte{deviceKey(d.ID), userCodeKey(d.UserCode)} {
			if _, err := txn.Get(k); err != badger.ErrKeyNotFound {
				t.Errorf("%q after Delete: %v", k, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateDevice(ctx, d); err != nil {
		t.Fatal(err)
	}
	mustUpdate(t, s, d.ID, func(rec *flow.Device) (flow.Verdict, error) {
		if !rec.LastPoll.IsZero() {
			t.Errorf("the new record has LastPoll %v", rec.LastPoll)
		}
		return flow.Keep, nil
	})
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
