package redisstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
	"github.com/caddy-device-flow/caddy-device-flow/storage/redisstore"
	"github.com/caddy-device-flow/caddy-device-flow/storage/redisstore/redistest"
	"github.com/caddy-device-flow/caddy-device-flow/storage/storetest"
)

// BenchmarkPollPendingParallel polls many live codes from several goroutines
// at once, as concurrent requests do; it has the name and shape of
// badgerstore's, so the two line up. Redis is bound by round trips, so this
// (not the one-at-a-time BenchmarkPollPending) is its throughput.
func BenchmarkPollPendingParallel(b *testing.B) {
	srv := redistest.Start(b)
	s := open(b, redisstore.Options{URL: srv.URL})
	ctx := context.Background()
	ids := make([]string, 10_000)
	for i := range ids {
		d := storetest.NewDevice(time.Hour)
		err := s.CreateDevice(ctx, d)
		for errors.Is(err, flow.ErrUserCodeTaken) {
			storetest.SetUserCode(d, flow.Base20.New())
			err = s.CreateDevice(ctx, d)
		}
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = d.ID
	}
	poll := func(rec *flow.Device) (flow.Verdict, error) {
		if rec == nil || rec.Status != flow.Pending {
			return flow.Keep, errors.New("not pending")
		}
		rec.LastPoll = time.Now()
		return flow.Save, nil
	}
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(time.Now().UnixNano()) // goroutines start at different codes
		for pb.Next() {
			i++
			if err := s.UpdateDevice(ctx, ids[(i&0x7fffffff)%len(ids)], poll); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
