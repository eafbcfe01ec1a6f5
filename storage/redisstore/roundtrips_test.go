package redisstore_test

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
	"github.com/caddy-device-flow/caddy-device-flow/storage/redisstore"
	"github.com/caddy-device-flow/caddy-device-flow/storage/redisstore/redistest"
	"github.com/caddy-device-flow/caddy-device-flow/storage/storetest"
)

// roundTrips counts what a Client sends Redis: round trips (a command, or
// a pipeline, sent and answered) and commands.
type roundTrips struct {
	trips, commands atomic.Int64
}

func (r *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		r.trips.Add(1)
		r.commands.Add(1)
		return next(ctx, cmd)
	}
}

func (r *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		r.trips.Add(1)
		r.commands.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// count runs op and returns the round trips and commands it took.
func (r *roundTrips) count(op func()) (trips, commands int64) {
	t0, c0 := r.trips.Load(), r.commands.Load()
	op()
	return r.trips.Load() - t0, r.commands.Load() - c0
}

// TestRoundTrips: each path of the flow is one round trip of one command
// in the common case (docs/multi-instance.md builds its capacity model on
// these counts); a record another instance changed costs one more.
func TestRoundTrips(t *testing.T) {
	srv := redistest.Start(t)
	prefix := uniquePrefix()
	a := connect(t, redisstore.Options{URL: srv.URL, KeyPrefix: prefix})
	b := connect(t, redisstore.Options{URL: srv.URL, KeyPrefix: prefix})
	hook := &roundTrips{}
	a.Redis().AddHook(hook)
	sa, sb := a.Store("h"), b.Store("h")
	ctx := context.Background()
	// The first script call loads it into the server (EVALSHA, NOSCRIPT,
	// EVAL): warm each up so that the counts are the steady state.
	warm := storetest.NewDevice(time.Hour)
	create(t, sa, warm)
	if err := sa.UpdateDevice(ctx, warm.UserCode, pollPending); err != nil {
		t.Fatal(err)
	}
	if _, err := sa.Tally(ctx, flow.Hit("warm", time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := sa.TakeLogin(ctx, "warm", "x"); err != flow.ErrNotFound {
		t.Fatal(err)
	}

	d := storetest.NewDevice(time.Hour)
	login := &flow.Login{UserCode: d.UserCode, State: "state-hmac", ExpiresAt: time.Now().Add(time.Minute)}
	approve := func(rec *flow.Device) (flow.Verdict, error) {
		rec.Status, rec.Sealed = flow.Approved, []byte("sealed")
		return flow.Save, nil
	}
	deliver := func(rec *flow.Device) (flow.Verdict, error) {
		if rec == nil || rec.Status != flow.Approved {
			return flow.Keep, nil
		}
		return flow.Delete, nil
	}
	deny := func(rec *flow.Device) (flow.Verdict, error) {
		if rec == nil {
			return flow.Keep, nil
		}
		rec.Status = flow.Denied
		return flow.Save, nil
	}
	var seen []flow.Status
	observe := func(rec *flow.Device) (flow.Verdict, error) {
		if rec == nil {
			seen = append(seen, 99)
		} else {
			seen = append(seen, rec.Status)
		}
		return flow.Keep, nil
	}
	tests := []struct {
		name            string
		op              func() error
		trips, commands int64
	}{
		{"issue", func() error { return sa.CreateDevice(ctx, d) }, 1, 1},
		{"pending poll", func() error { return sa.UpdateDevice(ctx, d.UserCode, pollPending) }, 1, 1},
		{"slow_down or any save", func() error { return sa.UpdateDevice(ctx, d.UserCode, pollPending) }, 1, 1},
		{"page lookup", func() error { _, err := sa.DeviceByUserCode(ctx, d.UserCode); return err }, 1, 1},
		{"approve (store the login)", func() error { return sa.PutLogin(ctx, "k", login) }, 1, 1},
		{"callback (take the login)", func() error { _, err := sa.TakeLogin(ctx, "k", "state-hmac"); return err }, 1, 1},
		{"callback (approve the record)", func() error { return sa.UpdateDevice(ctx, d.UserCode, approve) }, 1, 1},
		{"delivery", func() error { return sa.UpdateDevice(ctx, d.UserCode, deliver) }, 1, 1},
		{"poll after delivery", func() error { return sa.UpdateDevice(ctx, d.UserCode, deliver) }, 1, 1},
		{"guess counting (read both)", func() error {
			_, err := sa.Tally(ctx, flow.Read("g:ip:1"), flow.Read("g:all"))
			return err
		}, 1, 1},
		{"issue limits (IPv6: three prefixes, the lifetime's two windows)", func() error {
			_, err := sa.Tally(ctx, flow.Tally{Key: "i:64", TTL: time.Minute, Limit: 9}, flow.Tally{Key: "i:56", TTL: time.Minute, Limit: 9},
				flow.Tally{Key: "i:48", TTL: time.Minute, Limit: 9}, flow.Hit("i:all:1", time.Hour), flow.Read("i:all:0"))
			return err
		}, 1, 1},
	}
	for _, tc := range tests {
		var err error
		trips, commands := hook.count(func() { err = tc.op() })
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if trips != tc.trips || commands != tc.commands {
			t.Errorf("%s: %d round trips, %d commands; want %d, %d", tc.name, trips, commands, tc.trips, tc.commands)
		}
	}

	// Another instance changes a record this one remembers: the swap
	// fails and answers with the record as it is now, so fn sees the
	// change in the same round trip, Keep included (a device is never
	// answered from a stale memory); a Save costs one more to write.
	e := storetest.NewDevice(time.Hour)
	create(t, sa, e)
	if err := sb.UpdateDevice(ctx, e.UserCode, pollPending); err != nil {
		t.Fatal(err)
	}
	if trips, _ := hook.count(func() {
		if err := sa.UpdateDevice(ctx, e.UserCode, pollPending); err != nil {
			t.Fatal(err)
		}
	}); trips != 2 {
		t.Errorf("a poll after another instance's took %d round trips, want 2", trips)
	}
	if err := sb.UpdateDevice(ctx, e.UserCode, deny); err != nil {
		t.Fatal(err)
	}
	trips, _ := hook.count(func() {
		if err := sa.UpdateDevice(ctx, e.UserCode, observe); err != nil {
			t.Fatal(err)
		}
	})
	if want := []flow.Status{flow.Pending, flow.Denied}; !slices.Equal(seen, want) || trips != 1 {
		t.Errorf("after another instance denied it, fn saw %v in %d round trips; want %v in 1", seen, trips, want)
	}
	seen = nil
	if err := sb.UpdateDevice(ctx, e.UserCode, func(*flow.Device) (flow.Verdict, error) { return flow.Delete, nil }); err != nil {
		t.Fatal(err)
	}
	if err := sa.UpdateDevice(ctx, e.UserCode, observe); err != nil {
		t.Fatal(err)
	}
	if want := []flow.Status{flow.Denied, 99}; !slices.Equal(seen, want) {
		t.Errorf("after another instance deleted it, fn saw %v; want %v (then no record)", seen, want)
	}
}

// TestRecentRecordsBounded: the memory of records holds at most
// RecentRecords; the ones it forgot cost a read, and nothing else.
func TestRecentRecordsBounded(t *testing.T) {
	srv := redistest.Start(t)
	c := connect(t, redisstore.Options{URL: srv.URL, RecentRecords: 64})
	hook := &roundTrips{}
	c.Redis().AddHook(hook)
	s := c.Store("h")
	ctx := context.Background()
	var userCodes []string
	for range 1000 {
		d := storetest.NewDevice(time.Hour)
		create(t, s, d)
		userCodes = append(userCodes, d.UserCode)
	}
	trips, _ := hook.count(func() {
		for _, uc := range userCodes {
			if err := s.UpdateDevice(ctx, uc, pollPending); err != nil {
				t.Fatal(err)
			}
		}
	})
	// At most 128 remembered (two generations of 64): at least 872 polls
	// read first.
	if trips < 1000+872 {
		t.Errorf("1,000 polls took %d round trips: more than 128 records were remembered", trips)
	}
	// A fleet smaller than RecentRecords, polling in turn, is remembered
	// whole: one round trip a poll, round after round.
	fleet := connect(t, redisstore.Options{URL: srv.URL, RecentRecords: 3200})
	hookFleet := &roundTrips{}
	fleet.Redis().AddHook(hookFleet)
	userCodes = userCodes[:0]
	for range 1000 {
		d := storetest.NewDevice(time.Hour)
		create(t, fleet.Store("h"), d)
		userCodes = append(userCodes, d.UserCode)
	}
	for round := range 3 {
		if trips, _ := hookFleet.count(func() {
			for _, uc := range userCodes {
				if err := fleet.Store("h").UpdateDevice(ctx, uc, pollPending); err != nil {
					t.Fatal(err)
				}
			}
		}); trips != 1000 {
			t.Errorf("round %d: 1,000 polls of a remembered fleet took %d round trips, want 1,000", round, trips)
		}
	}
	// With no memory at all, every poll reads first.
	none := connect(t, redisstore.Options{URL: srv.URL, RecentRecords: -1})
	hookNone := &roundTrips{}
	none.Redis().AddHook(hookNone)
	d := storetest.NewDevice(time.Hour)
	create(t, none.Store("h"), d)
	if trips, _ := hookNone.count(func() {
		if err := none.Store("h").UpdateDevice(ctx, d.UserCode, pollPending); err != nil {
			t.Fatal(err)
		}
	}); trips != 2 {
		t.Errorf("a poll without memory took %d round trips, want 2 (GET, then the swap)", trips)
	}
}
