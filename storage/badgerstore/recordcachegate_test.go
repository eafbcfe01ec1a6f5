package badgerstore

import (
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
	"github.com/caddy-device-flow/caddy-device-flow/storage/storetest"
)

// The sketch counts distinct devices within a few percent, however often
// each is read, from a hundred to beyond a million.
func TestCacheGateCountsDevices(t *testing.T) {
	for _, n := range []int{100, 10_000, 65_536, 300_000, 1_500_000} {
		g := newCacheGate(1 << 16)
		for round := range 2 {
			for i := range n {
				g.sketchDevice(fingerprint("device-" + strconv.Itoa(i)))
			}
			got := g.devices()
			if err := math.Abs(got-float64(n)) / float64(n); err > 0.03 {
				t.Errorf("%d devices read %d times: counted %.0f (%.1f%% off)", n, round+1, got, 100*err)
			}
		}
	}
}

// sketchDevice sets fp's bit without counting a read (no decision).
func (g *cacheGate) sketchDevice(fp uint64) {
	g.sketch[fp%sketchBits/64].Or(uint64(1) << (fp % 64))
}

// The gate opens for devices that fit and poll again, closes as soon as
// the window sees more than twice what the cache holds, and holds in
// between; a new window starts the count again.
func TestCacheGateOpensWhenDevicesFit(t *testing.T) {
	const capacity = 1000
	g := newCacheGate(capacity)
	read := func(from, to int) {
		for i := from; i < to; i++ {
			g.note(fingerprint("device-" + strconv.Itoa(i)))
		}
	}
	steps := []struct {
		what     string
		do       func()
		wantOpen bool
	}{
		{"a new gate", func() {}, false},
		{"500 devices read once", func() { read(0, 500) }, false},
		{"the same 500 read again", func() { read(0, 500); read(0, 500) }, true},
		{"1,300 devices more (1,800 in all: between the bounds)", func() { read(500, 1800) }, true},
		{"1,700 devices more (3,500 in all)", func() { read(1800, 3500) }, false},
		{"a new window: 900 devices read three times", func() { g.endWindow(); read(0, 900); read(0, 900); read(0, 900) }, true},
		{"a new window: 5,000 devices read in turn, five times", func() {
			g.endWindow()
			for range 5 {
				read(10_000, 15_000)
			}
		}, false},
		{"the window ends (5,000 devices: stays closed)", func() { g.endWindow() }, false},
	}
	for _, step := range steps {
		step.do()
		if got := g.caching(); got != step.wantOpen {
			t.Fatalf("after %s: caching %v, want %v (%.0f devices, %d reads)", step.what, got, step.wantOpen, g.devices(), g.reads.Load())
		}
	}
}

// In the store: a few devices polling again are cached; many devices
// polling in turn close the cache, and the stripes give its memory back.
func TestRecordCacheClosesForManyDevices(t *testing.T) {
	s := open(t, Options{InMemory: true, CachedRecords: 4 * stripes})
	ctx := t.Context()
	poll := func(devs []*flow.Device) {
		for _, dev := range devs {
			if err := s.UpdateDevice(ctx, dev.ID, func(*flow.Device) (flow.Verdict, error) { return flow.Keep, nil }); err != nil {
				t.Fatal(err)
			}
		}
	}
	create := func(n int) []*flow.Device {
		devs := make([]*flow.Device, n)
		for i := range devs {
			devs[i] = storetest.NewDevice(10 * time.Minute)
			if err := s.CreateDevice(ctx, devs[i]); err != nil {
				t.Fatal(err)
			}
		}
		return devs
	}
	cached := func() (n int) {
		for i := range s.stripes {
			s.stripes[i].mu.Lock()
			n += len(s.stripes[i].records)
			s.stripes[i].mu.Unlock()
		}
		return n
	}

	few := create(200)
	for range 4 {
		poll(few)
	}
	if n := cached(); n < 100 {
		t.Fatalf("200 devices polling again: %d records cached, want most of them", n)
	}
	many := create(4000)
	poll(many)
	if s.gate.caching() {
		t.Fatal("4,000 devices polling in turn: the cache is still open")
	}
	s.sweep(time.Now())
	if n := cached(); n != 0 {
		t.Fatalf("the cache is closed but holds %d records", n)
	}
	// The next window sees only the few again: the cache opens.
	for range 4 {
		poll(few)
	}
	s.sweep(time.Now())
	for range 2 {
		poll(few)
	}
	if n := cached(); n < 100 {
		t.Fatalf("a window later, with 200 devices polling: %d records cached", n)
	}
}
