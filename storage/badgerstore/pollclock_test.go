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

// forgetClock empties the poll clock, as a restart does.
func forgetClock(s *Store) {
	for i := range s.stripes {
		s.stripes[i].mu.Lock()
		s.stripes[i].polls.free()
		s.stripes[i].mu.Unlock()
	}
}

// A restart forgets the poll clock, and that may only ever spare a
// device a slow_down, never cost it one: every device's polls are
// answered by a store whose clock is forgotten before every other round
// and by one that remembers everything; the forgetful one may say
// slow_down only where the other does.
func TestForgettingNeverCostsASlowDown(t *testing.T) {
	tests := []struct {
		name  string
		gaps  []time.Duration // between a device's polls
		tardy bool            // the forgetful store must have spared a slow_down
	}{
		{"on time", []time.Duration{5 * time.Second, 5 * time.Second, 5 * time.Second}, false},
		{"double sends", []time.Duration{5 * time.Second, 100 * time.Millisecond, 5 * time.Second, 50 * time.Millisecond, 100 * time.Millisecond}, true},
		{"too fast", []time.Duration{2 * time.Second, 2 * time.Second, 2 * time.Second, 9 * time.Second, time.Second}, true},
		{"retry then too fast", []time.Duration{5 * time.Second, 200 * time.Millisecond, 3 * time.Second, 10 * time.Second}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			forgetful := open(t, Options{InMemory: true})
			full := open(t, Options{InMemory: true})
			const devices = 50
			start := time.Now().Round(0)
			ids := make([]string, devices)
			for i := range ids {
				d := storetest.NewDevice(time.Hour)
				d.CreatedAt = start.Add(-time.Minute)
				for _, s := range []*Store{forgetful, full} {
					if err := s.CreateDevice(ctx, d); err != nil {
						t.Fatal(err)
					}
				}
				ids[i] = d.ID
			}
			now := start
			spared := 0
			for round, gap := range append([]time.Duration{0}, tc.gaps...) {
				now = now.Add(gap)
				if round%2 == 1 {
					forgetClock(forgetful)
				}
				for i, id := range ids {
					var slowForgetful, slowFull bool
					mustUpdate(t, forgetful, id, func(d *flow.Device) (flow.Verdict, error) {
						v, slow := flowPoll(d, now)
						slowForgetful = slow
						return v, nil
					})
					mustUpdate(t, full, id, func(d *flow.Device) (flow.Verdict, error) {
						v, slow := flowPoll(d, now)
						slowFull = slow
						return v, nil
					})
					if slowForgetful && !slowFull {
						t.Fatalf("device %d after %v: slow_down from the forgetful store only", i, gap)
					}
					if slowFull && !slowForgetful {
						spared++
					}
				}
			}
			if tc.tardy && spared == 0 {
				t.Errorf("forgetting forgot nothing that mattered: the test tests nothing")
			}
			t.Logf("%d slow_downs spared by forgetting", spared)
		})
	}
}

// fromBadger makes Badger lose d's record behind the store's back, so
// that an update that still sees a record saw the poll clock's.
func fromBadger(t *testing.T, s *Store, d *flow.Device) {
	t.Helper()
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete(deviceKey(d.ID)) }); err != nil {
		t.Fatal(err)
	}
}

// After a device's first poll, its pending polls are answered from the
// clock, without Badger; anything else they decide is decided again on
// the record from Badger.
func TestPendingPollsComeFromTheClock(t *testing.T) {
	at := time.Now().Round(0).Add(time.Minute) // after the records' creation
	tests := []struct {
		name    string
		prepare func(*flow.Device)                       // the record as created
		fn      func(*flow.Device) (flow.Verdict, error) // the second poll
		clock   bool                                     // answered from the clock alone
	}{
		{"on-time poll", nil, poll(at.Add(5*time.Second), false), true},
		{"forgiven retry", nil, poll(at, true), true},
		{"nothing moved", nil, func(*flow.Device) (flow.Verdict, error) { return flow.Save, nil }, true},
		{"slow_down", nil, func(d *flow.Device) (flow.Verdict, error) {
			d.LastPoll, d.Interval = at, d.Interval+5*time.Second
			return flow.Save, nil
		}, false},
		{"keep (a client that does not match)", nil, func(*flow.Device) (flow.Verdict, error) { return flow.Keep, nil }, false},
		{"delivered", nil, func(*flow.Device) (flow.Verdict, error) { return flow.Delete, nil }, false},
		{"no seal key yet", func(d *flow.Device) { d.SealKey = nil }, poll(at.Add(5*time.Second), false), false},
		{"approved", func(d *flow.Device) { d.Status, d.Sealed = flow.Approved, []byte("tokens") }, poll(at.Add(5*time.Second), false), false},
		{"interval not in whole milliseconds", func(d *flow.Device) { d.Interval += time.Microsecond }, poll(at.Add(5*time.Second), false), false},
		{"interval over 17 minutes", func(d *flow.Device) { d.Interval = time.Hour }, poll(at.Add(5*time.Second), false), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t, Options{InMemory: true})
			d := storetest.NewDevice(time.Hour)
			if tc.prepare != nil {
				tc.prepare(d)
			}
			if err := s.CreateDevice(context.Background(), d); err != nil {
				t.Fatal(err)
			}
			mustUpdate(t, s, d.ID, poll(at, false)) // the first poll reads Badger
			fromBadger(t, s, d)
			var seen []*flow.Device
			mustUpdate(t, s, d.ID, func(rec *flow.Device) (flow.Verdict, error) {
				if rec == nil {
					seen = append(seen, nil)
					return flow.Keep, nil
				}
				copied := *rec
				seen = append(seen, &copied)
				return tc.fn(rec)
			})
			switch {
			case tc.clock && (len(seen) != 1 || seen[0] == nil):
				t.Fatalf("fn saw %v, want once the record from the clock", seen)
			case !tc.clock && (len(seen) == 0 || seen[len(seen)-1] != nil):
				t.Fatalf("fn saw %v, want it last on Badger's (lost) record", seen)
			case tc.clock:
				got := seen[0]
				if got.ID != d.ID || got.ClientID != d.ClientID || got.Scope != d.Scope || got.Status != flow.Pending ||
					got.Interval != d.Interval || got.SealKey == nil || !got.LastPoll.Equal(at) || got.Retried ||
					!got.ExpiresAt.Equal(d.ExpiresAt.Truncate(time.Second)) {
					t.Errorf("the clock's record %+v does not match the stored %+v", got, d)
				}
			}
		})
	}
}

// A poll in a code's last second is decided on the record: the clock
// keeps the expiry only to the second.
func TestLastSecondIsDecidedOnTheRecord(t *testing.T) {
	s := open(t, Options{InMemory: true})
	d := storetest.NewDevice(time.Hour)
	d.ExpiresAt = d.ExpiresAt.Truncate(time.Second).Add(600 * time.Millisecond)
	if err := s.CreateDevice(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	mustUpdate(t, s, d.ID, poll(time.Now(), false))
	now := d.ExpiresAt.Add(-300 * time.Millisecond) // not expired yet
	var expiries []time.Time
	mustUpdate(t, s, d.ID, func(rec *flow.Device) (flow.Verdict, error) {
		expiries = append(expiries, rec.ExpiresAt)
		if !now.Before(rec.ExpiresAt) {
			return flow.Keep, nil // expired_token, as the flow would say
		}
		rec.LastPoll = now
		return flow.Save, nil
	})
	if len(expiries) != 2 || !expiries[1].Equal(d.ExpiresAt) {
		t.Fatalf("fn saw expiries %v, want the clock's second and then the record's %v", expiries, d.ExpiresAt)
	}
	mustUpdate(t, s, d.ID, func(rec *flow.Device) (flow.Verdict, error) {
		if !rec.LastPoll.Equal(now) {
			t.Errorf("LastPoll %v, want the poll's %v", rec.LastPoll, now)
		}
		return flow.Keep, nil
	})
}

// The sweeper drops the entries of expired codes, and a stripe left
// without entries gives its memory back.
func TestSweepDropsExpiredEntries(t *testing.T) {
	s := open(t, Options{InMemory: true})
	var live []*flow.Device
	for i := range 400 {
		d := storetest.NewDevice(time.Hour)
		if i%2 == 0 {
			d.ExpiresAt = time.Now().Add(10 * time.Second)
		} else {
			live = append(live, d)
		}
		if err := s.CreateDevice(context.Background(), d); err != nil {
			t.Fatal(err)
		}
		mustUpdate(t, s, d.ID, poll(time.Now(), false))
	}
	entries := func() (n, slots int) {
		for i := range s.stripes {
			n += s.stripes[i].polls.n
			slots += len(s.stripes[i].polls.slots)
		}
		return n, slots
	}
	if n, _ := entries(); n != 400 {
		t.Fatalf("%d entries after 400 first polls", n)
	}
	s.sweepClock(time.Now().Add(time.Minute))
	if n, _ := entries(); n != len(live) {
		t.Errorf("%d entries after the sweep, want the %d live codes'", n, len(live))
	}
	for _, d := range live {
		fp := fingerprint(d.ID)
		if _, ok := s.stripe(fp).polls.get(fp); !ok {
			t.Fatalf("a live code lost its entry")
		}
	}
	s.sweepClock(time.Now().Add(2 * time.Hour))
	if n, slots := entries(); n != 0 || slots != 0 {
		t.Errorf("%d entries in %d slots when every code has expired", n, slots)
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
