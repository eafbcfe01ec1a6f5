package badgerstore

import (
	"math/rand/v2"
	"testing"
)

// The table agrees with a map through random puts and removes (with
// fingerprints crowded into few homes, so that probes run long and wrap,
// and removals have entries to move back), then a keepOnly.
func TestPollTableAgreesWithAMap(t *testing.T) {
	for _, crowd := range []uint64{0xffffffff, 0xff, 0x3} { // the bits of fp that pick its home
		t.Run("", func(t *testing.T) {
			rnd := rand.New(rand.NewPCG(1, crowd))
			var tbl pollTable
			defer tbl.free()
			want := map[uint64]pollEntry{}
			for i := range 20000 {
				fp := rnd.Uint64()&^0xffffffff | rnd.Uint64()&crowd | 1
				if rnd.IntN(3) == 0 && len(want) > 0 {
					for k := range want {
						fp = k
						break
					}
					tbl.remove(fp)
					delete(want, fp)
				} else {
					e := pollEntry{fp: fp, clock: uint64(i), meta: uint64(i) << 32}
					tbl.put(e)
					want[fp] = e
				}
				if tbl.n != len(want) {
					t.Fatalf("step %d: %d entries, want %d", i, tbl.n, len(want))
				}
			}
			check := func() {
				t.Helper()
				for fp, e := range want {
					if got, ok := tbl.get(fp); !ok || got != e {
						t.Fatalf("get(%x) = %+v %v, want %+v", fp, got, ok, e)
					}
				}
				if (tbl.n+1)*8 > len(tbl.slots)*7+8 {
					t.Fatalf("%d entries in %d slots", tbl.n, len(tbl.slots))
				}
			}
			check()
			tbl.keepOnly(func(e pollEntry) bool { return e.clock%2 == 0 })
			for fp, e := range want {
				if e.clock%2 != 0 {
					delete(want, fp)
					if _, ok := tbl.get(fp); ok {
						t.Fatalf("keepOnly kept %x", fp)
					}
				}
			}
			if tbl.n != len(want) {
				t.Fatalf("%d entries after keepOnly, want %d", tbl.n, len(want))
			}
			check()
			for fp := range want {
				tbl.remove(fp)
			}
			if tbl.n != 0 || tbl.slots != nil {
				t.Errorf("an emptied table keeps %d entries in %d slots", tbl.n, len(tbl.slots))
			}
		})
	}
}

// A full table grows, and the slots it gives back are unmapped (go test
// -race would not see a slot used after it was given back, so this is
// the memory check: a table used after free would fault).
func TestPollTableGrows(t *testing.T) {
	var tbl pollTable
	for fp := uint64(1); fp <= 100_000; fp++ {
		tbl.put(pollEntry{fp: fp * 0x9e3779b97f4a7c15, clock: fp})
	}
	if tbl.n != 100_000 || len(tbl.slots)*7 < tbl.n*8 {
		t.Fatalf("%d entries in %d slots", tbl.n, len(tbl.slots))
	}
	if load := float64(tbl.n) / float64(len(tbl.slots)); load < 0.6 {
		t.Errorf("load %.2f after growing: the table wastes memory", load)
	}
	tbl.free()
	if tbl.slots != nil || tbl.n != 0 {
		t.Errorf("free left %d entries in %d slots", tbl.n, len(tbl.slots))
	}
}
