package storetest

import (
	"testing"
	"time"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// testDevices checks Store.Devices: it hands over every record of its
// namespace once, as a lookup returns it (poll fields and changes
// included), none of another namespace's nor a deleted one, and stops
// when fn says so.
func testDevices(t *testing.T, open Open) {
	a, b := open(t, randomKey("ns-")), open(t, randomKey("ns-"))
	want := map[string]*flow.Device{}
	for range 5 {
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

	got := map[string]*flow.Device{}
	err := a.Devices(ctx(t), func(d *flow.Device) bool {
		if got[d.UserCode] != nil {
			t.Errorf("Devices gave %s twice", d.UserCode)
		}
		got[d.UserCode] = d
		return true
	})
	if err != nil {
		t.Fatalf("Devices: %v", err)
	}
	if len(got) != len(want) {
		t.Errorf("Devices gave %d records, want %d", len(got), len(want))
	}
	for code, w := range want {
		if d := diffDevice(got[code], w); d != "" {
			t.Errorf("Devices, %s: %s", code, d)
		}
	}

	calls := 0
	if err := a.Devices(ctx(t), func(*flow.Device) bool { calls++; return false }); err != nil || calls != 1 {
		t.Errorf("Devices with fn returning false: %d calls, %v; want 1, nil", calls, err)
	}
}
