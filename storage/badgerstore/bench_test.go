package badgerstore

import (
	"errors"
	"testing"
	"time"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
	"github.com/caddy-device-flow/caddy-device-flow/flow/codes"
	"github.com/caddy-device-flow/caddy-device-flow/storage/storetest"
)

// benchLive is how many live codes the poll benchmarks poll in turn, so
// that the records come from the tree and not all from the memtable
// (bench/livecodes measures a million).
const benchLive = 50_000

func fill(b *testing.B, s *Store, n int) []string {
	b.Helper()
	userCodes := make([]string, 0, n)
	for range n {
		d := storetest.NewDevice(time.Hour)
		err := s.CreateDevice(b.Context(), d)
		for errors.Is(err, flow.ErrUserCodeTaken) { // the birthday bound
			d.UserCode = codes.Base20.New()
			err = s.CreateDevice(b.Context(), d)
		}
		if err != nil {
			b.Fatal(err)
		}
		userCodes = append(userCodes, d.UserCode)
	}
	return userCodes
}

// BenchmarkPoll compares what a poll costs the store: reading the record
// alone, a pending poll (LastPoll saved, into the poll memory), and a
// poll whose Save also changes the record (as slow_down does: the whole
// record written to Badger), which is what every pending poll would cost
// without the poll memory.
func BenchmarkPoll(b *testing.B) {
	db := openDB(b, Options{Dir: b.TempDir(), GCInterval: -1})
	s := db.Store("bench")
	userCodes := fill(b, s, benchLive)
	cases := []struct {
		name string
		poll func(userCode string, now time.Time) error
	}{
		{"read", func(userCode string, _ time.Time) error {
			_, err := s.DeviceByUserCode(b.Context(), userCode)
			return err
		}},
		{"pending", func(userCode string, now time.Time) error {
			return s.UpdateDevice(b.Context(), userCode, func(d *flow.Device) (flow.Verdict, error) {
				d.LastPoll = now
				return flow.Save, nil
			})
		}},
		{"written", func(userCode string, now time.Time) error {
			return s.UpdateDevice(b.Context(), userCode, func(d *flow.Device) (flow.Verdict, error) {
				d.LastPoll = now
				d.Interval ^= 1 // some change besides the poll fields
				return flow.Save, nil
			})
		}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := int(time.Now().UnixNano()) % len(userCodes)
				for pb.Next() {
					i = (i + 1) % len(userCodes)
					if err := tc.poll(userCodes[i], time.Now()); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

func BenchmarkCreateDevice(b *testing.B) {
	s := openDB(b, Options{Dir: b.TempDir(), GCInterval: -1}).Store("bench")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			d := storetest.NewDevice(time.Hour)
			err := s.CreateDevice(b.Context(), d)
			for errors.Is(err, flow.ErrUserCodeTaken) {
				d.UserCode = codes.Base20.New()
				err = s.CreateDevice(b.Context(), d)
			}
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}
