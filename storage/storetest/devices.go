package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// testDevices checks Store.Devices: page after page, it hands over every
// record of its namespace, as a lookup returns it (poll fields and
// changes included), none of another namespace's nor a deleted one, no
// page holding more than its limit; a cursor it did not make is
// ErrBadCursor.
func testDevices(t *testing.T, open Open) {
	a, b := open(t, randomKey("ns-")), open(t, randomKey("ns-"))
	want := map[string]*flow.Device{}
	for range 9 {
		d := NewDevice(10 * time.Minute)
		mustCreate(t, a, d)
		want[d.UserCode] = d
	}
	var polled, approved, deleted *flow.Device
	for _, d := range want {
		switch {
		case polled == nil:
			polled = d
		case approved == nil:
			approved = d
		case deleted == nil:
			deleted = d
		}
	}
	save(t, a, polled.UserCode, func(d *flow.Device) { d.LastPoll, d.Retried = time.Now(), true })
	want[polled.UserCode] = peek(t, a, polled.UserCode)
	save(t, a, approved.UserCode, func(d *flow.Device) { d.Status, d.Sealed = flow.Approved, []byte("sealed") })
	want[approved.UserCode] = peek(t, a, approved.UserCode)
	if err := a.UpdateDevice(ctx(t), deleted.UserCode, func(*flow.Device) (flow.Verdict, error) { return flow.Delete, nil }); err != nil {
		t.Fatal(err)
	}
	delete(want, deleted.UserCode)
	mustCreate(t, b, NewDevice(10*time.Minute)) // another namespace's

	// A limit of 3 or more: on Redis, a page of 1 or 2 may hold a few
	// more when one slot of its key table holds more of them.
	for _, limit := range []int{3, 4, 1000} {
		got, unreadable, pages := listDevices(t, a, limit)
		if len(unreadable) != 0 {
			t.Errorf("limit %d: unreadable %v, want none", limit, unreadable)
		}
		if len(got) != len(want) {
			t.Errorf("limit %d: Devices gave %d records, want %d", limit, len(got), len(want))
		}
		for code, w := range want {
			if d := diffDevice(got[code], w); d != "" {
				t.Errorf("limit %d: Devices, %s: %s", limit, code, d)
			}
		}
		if minPages := len(want) / limit; pages < minPages {
			t.Errorf("limit %d: %d pages, want at least %d", limit, pages, minPages)
		}
	}
	if _, err := a.Devices(ctx(t), "not a cursor!", 3); !errors.Is(err, flow.ErrBadCursor) {
		t.Errorf("Devices after a cursor it did not make: %v, want ErrBadCursor", err)
	}
}

// Corrupt stores bytes that are no record as the record of userCode in
// s, the store of namespace, creating it (for RunUnreadable).
type Corrupt func(t *testing.T, s flow.Store, namespace, userCode string)

// RunUnreadable checks that Store.Devices lists a record it cannot decode
// under Unreadable, by its user code, and goes on listing the others;
// corrupt writes such a record the way the backend stores one.
func RunUnreadable(t *testing.T, open Open, corrupt Corrupt) {
	t.Helper()
	t.Run("Unreadable", func(t *testing.T) {
		ns := randomKey("ns-")
		s := open(t, ns)
		want := map[string]bool{}
		var broken []*flow.Device
		for i := range 5 {
			d := NewDevice(10 * time.Minute)
			mustCreate(t, s, d)
			if i < 2 {
				broken = append(broken, d)
			} else {
				want[d.UserCode] = true
			}
		}
		corrupt(t, s, ns, broken[0].UserCode) // a record overwritten
		corrupt(t, s, ns, broken[1].UserCode)
		fresh := randomKey("")[:8]
		corrupt(t, s, ns, fresh) // and one written from nothing
		wantUnreadable := map[string]bool{broken[0].UserCode: true, broken[1].UserCode: true, fresh: true}

		got, unreadable, _ := listDevices(t, s, 3)
		if len(got) != len(want) {
			t.Errorf("Devices gave %d records, want the %d readable ones", len(got), len(want))
		}
		for code := range want {
			if got[code] == nil {
				t.Errorf("Devices left out the readable %s", code)
			}
		}
		if len(unreadable) != len(wantUnreadable) {
			t.Errorf("unreadable %v, want %v", unreadable, wantUnreadable)
		}
		for code := range unreadable {
			if !wantUnreadable[code] {
				t.Errorf("unreadable %v, want %v", unreadable, wantUnreadable)
			}
		}
	})
}

// listDevices lists every page of s's records, limit at a time, and
// checks that no page holds more than limit nor a record twice. A
// record repeated on a later page is counted once: a backend may repeat
// one there (see flow.Store.Devices), but must give the same record.
func listDevices(t *testing.T, s flow.Store, limit int) (got map[string]*flow.Device, unreadable map[string]bool, pages int) {
	t.Helper()
	got, unreadable = map[string]*flow.Device{}, map[string]bool{}
	for cursor, first := "", true; first || cursor != ""; first = false {
		page, err := s.Devices(ctx(t), cursor, limit)
		if err != nil {
			t.Fatalf("Devices, page %d: %v", pages, err)
		}
		if n := len(page.Devices) + len(page.Unreadable); n > limit {
			t.Errorf("page %d holds %d records, past its limit %d", pages, n, limit)
		}
		onPage := map[string]bool{}
		for _, d := range page.Devices {
			if onPage[d.UserCode] {
				t.Errorf("page %d gave %s twice", pages, d.UserCode)
			}
			onPage[d.UserCode] = true
			if seen := got[d.UserCode]; seen != nil {
				if diff := diffDevice(d, seen); diff != "" {
					t.Errorf("%s on two pages, differing: %s", d.UserCode, diff)
				}
			}
			got[d.UserCode] = d
		}
		for _, code := range page.Unreadable {
			unreadable[code] = true
		}
		cursor, pages = page.Next, pages+1
		if pages > 10_000 {
			t.Fatal("Devices pages without end")
		}
	}
	return got, unreadable, pages
}
