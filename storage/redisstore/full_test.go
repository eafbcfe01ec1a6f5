package redisstore_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
	"github.com/caddy-device-flow/caddy-device-flow/storage/redisstore"
	"github.com/caddy-device-flow/caddy-device-flow/storage/redisstore/redistest"
	"github.com/caddy-device-flow/caddy-device-flow/storage/storetest"
)

// A Redis at maxmemory with noeviction answers every write with OOM: each
// is flow.ErrUnavailable (so the flow answers 503 + Retry-After and logs
// the outage once, flow/outage_flood_test.go), with Redis's OOM reachable
// for the operator; reads go on, and writes work again once there is room.
func TestFullRedisIsUnavailable(t *testing.T) {
	srv := redistest.Start(t, redistest.Args("--maxmemory-policy", "noeviction"))
	s := connect(t, redisstore.Options{URL: srv.URL}).Store("h")
	ctx := context.Background()
	issued := storetest.NewDevice(time.Hour)
	create(t, s, issued)

	if _, err := redistest.Do(srv.Addr, "CONFIG", "SET", "maxmemory", "1"); err != nil {
		t.Fatal(err)
	}
	writes := []struct {
		name  string
		write func() error
	}{
		{"CreateDevice", func() error { return s.CreateDevice(ctx, storetest.NewDevice(time.Hour)) }},
		{"UpdateDevice", func() error {
			return s.UpdateDevice(ctx, issued.UserCode, func(d *flow.Device) (flow.Verdict, error) {
				d.LastPoll = time.Now()
				return flow.Save, nil
			})
		}},
		{"PutLogin", func() error {
			return s.PutLogin(ctx, "l", &flow.Login{ExpiresAt: time.Now().Add(time.Minute)})
		}},
		{"Tally", func() error { _, err := storetest.Hit(ctx, s, "k", time.Minute); return err }},
		{"Secret", func() error {
			_, err := s.Secret(ctx, "new", func() ([]byte, error) { return []byte("secret"), nil })
			return err
		}},
	}
	for _, w := range writes {
		err := w.write()
		if !errors.Is(err, flow.ErrUnavailable) || !strings.Contains(err.Error(), "OOM") {
			t.Errorf("%s on a full Redis: %v, want flow.ErrUnavailable with Redis's OOM", w.name, err)
		}
	}
	if d, err := s.DeviceByUserCode(ctx, issued.UserCode); err != nil || d.UserCode != issued.UserCode {
		t.Errorf("reading on a full Redis: %+v, %v", d, err)
	}

	if _, err := redistest.Do(srv.Addr, "CONFIG", "SET", "maxmemory", "0"); err != nil {
		t.Fatal(err)
	}
	for _, w := range writes {
		if err := w.write(); err != nil {
			t.Errorf("%s once there is room: %v", w.name, err)
		}
	}
}
