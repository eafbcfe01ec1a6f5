package badgerstore

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
	"github.com/caddy-device-flow/caddy-device-flow/storage/storetest"
)

// Benchmarks of the store operations on the hot paths, on disk as in
// production. BenchmarkCreateDevice and BenchmarkPollPending have the same
// names and shapes as redisstore's, so `go test -bench . ./storage/...`
// lines the two backends up.

// benchLive is how many live codes the poll benchmarks spread their polls
// over: a real server polls many codes, not one that stays in the memtable.
// bench/livecodes measures 10k against 1M.
const benchLive = 10_000

func openBench(b *testing.B) *Store { return openBenchWith(b, Options{}) }

func openBenchWith(b *testing.B, o Options) *Store {
	b.Helper()
	o.Dir, o.GCInterval = b.TempDir(), -1
	s, err := Open(o)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// fill stores n pending codes and returns their IDs and user codes.
func fill(b *testing.B, s *Store, n int) (ids, userCodes []string) {
	b.Helper()
	ctx := context.Background()
	for range n {
		d := storetest.NewDevice(time.Hour)
		if err := createDevice(ctx, s, d); err != nil {
			b.Fatal(err)
		}
		ids = append(ids, d.ID)
		userCodes = append(userCodes, d.UserCode)
	}
	return ids, userCodes
}

// createDevice stores d, drawing another user code while the drawn one is
// taken, as the flow does: among the b.N random codes of a long run two
// may well be equal (birthday bound).
func createDevice(ctx context.Context, s *Store, d *flow.Device) error {
	err := s.CreateDevice(ctx, d)
	for errors.Is(err, flow.ErrUserCodeTaken) {
		storetest.SetUserCode(d, flow.Base20.New())
		err = s.CreateDevice(ctx, d)
	}
	return err
}

// pollPending is what flow's poll does to a pending code that is on time.
func pollPending(rec *flow.Device) (flow.Verdict, error) {
	if rec == nil || rec.Status != flow.Pending {
		return flow.Keep, errors.New("not pending")
	}
	rec.LastPoll = time.Now()
	return flow.Save, nil
}

func BenchmarkCreateDevice(b *testing.B) {
	s := openBench(b)
	ctx := context.Background()
	devs := make([]*flow.Device, b.N)
	for i := range devs {
		devs[i] = storetest.NewDevice(10 * time.Minute)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := createDevice(ctx, s, devs[i]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCreateDeviceParallel issues codes from ~64 goroutines at once,
// as the device endpoint does under 64 concurrent connections.
func BenchmarkCreateDeviceParallel(b *testing.B) {
	s := openBench(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := createDevice(ctx, s, storetest.NewDevice(10*time.Minute)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkPollPending polls pending codes: after each one's first poll,
// answered from the poll clock alone (pollclock.go);
// BenchmarkPollPendingWithoutClock is the same with every poll written to
// Badger, as before the clock.
func BenchmarkPollPending(b *testing.B) {
	benchPollPending(b, openBench(b))
}

func BenchmarkPollPendingWithoutClock(b *testing.B) {
	benchPollPending(b, openBenchWith(b, Options{NoPollClock: true}))
}

func benchPollPending(b *testing.B, s *Store) {
	ids, _ := fill(b, s, benchLive)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := s.UpdateDevice(ctx, ids[i%len(ids)], pollPending); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPollPendingParallel polls from several goroutines at once, as
// concurrent requests do: Badger's transactions and write batching show.
func BenchmarkPollPendingParallel(b *testing.B) {
	s := openBench(b)
	ids, _ := fill(b, s, benchLive)
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(time.Now().UnixNano()) // goroutines start at different codes
		for pb.Next() {
			i++
			if err := s.UpdateDevice(ctx, ids[(i&0x7fffffff)%len(ids)], pollPending); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkDeviceByUserCode is the lookup behind the person's code entry.
func BenchmarkDeviceByUserCode(b *testing.B) {
	s := openBench(b)
	_, userCodes := fill(b, s, benchLive)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.DeviceByUserCode(ctx, userCodes[i%len(userCodes)]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPollUnknown is a poll of a code that does not exist (a guess, or
// one already delivered): a read that finds nothing.
func BenchmarkPollUnknown(b *testing.B) {
	s := openBench(b)
	fill(b, s, benchLive)
	ctx := context.Background()
	ids := make([]string, 1024)
	for i := range ids {
		ids[i] = flow.DeviceID(fmt.Sprint("unknown-", i))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := s.UpdateDevice(ctx, ids[i%len(ids)], func(d *flow.Device) (flow.Verdict, error) {
			if d != nil {
				return flow.Keep, errors.New("found a code that was never created")
			}
			return flow.Keep, nil
		}); err != nil {
			b.Fatal(err)
		}
	}
}
