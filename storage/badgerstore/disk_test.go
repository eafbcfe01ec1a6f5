package badgerstore

import (
	"errors"
	"math"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
	"github.com/caddy-device-flow/caddy-device-flow/storage/storetest"
)

// The guard refuses new codes below MinFree and every write below a
// quarter of it, lets the rest through, logs each change once, and lifts
// by itself. It runs on the real filesystem: MinFree is moved around the
// free space there (as a reload's new min_free would), with margins wide
// enough for other writers on the same disk.
func TestDiskGuard(t *testing.T) {
	dir := t.TempDir()
	free, err := FreeSpace(dir)
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skipf("no free-space check on %s", runtime.GOOS)
	}
	if err != nil {
		t.Fatal(err)
	}
	var seen atomic.Value
	core, logs := observer.New(zap.InfoLevel)
	db := openDB(t, Options{
		Dir: dir, MinFree: 1, Logger: zap.New(core),
		OnDiskCheck: func(st DiskState) { seen.Store(st) },
	})
	s, ctx := db.Store("h"), t.Context()
	issued := storetest.NewDevice(10 * time.Minute)
	if err := s.CreateDevice(ctx, issued); err != nil {
		t.Fatal(err)
	}
	// setMinFree applies a new MinFree at once rather than at the next
	// background check.
	setMinFree := func(n uint64) {
		db.SetMinFree(int64(n))
		db.disk.check()
	}

	setMinFree(2 * free) // under MinFree, over a quarter of it
	db.disk.check()      // no second line for the same state
	if st := seen.Load().(DiskState); !st.Low || st.Full || st.Free == 0 {
		t.Fatalf("observed %+v, want low", st)
	}
	if err := s.CreateDevice(ctx, storetest.NewDevice(time.Minute)); !errors.Is(err, ErrDiskLow) || !errors.Is(err, flow.ErrUnavailable) {
		t.Fatalf("CreateDevice on a low disk: %v, want ErrDiskLow wrapping flow.ErrUnavailable", err)
	}
	// The code issued before goes on: polled, approved, a login stored.
	mustUpdate(t, s, issued.UserCode, flow.Save, poll(time.Now()))
	mustUpdate(t, s, issued.UserCode, flow.Save, func(d *flow.Device) { d.Status = flow.Approved })
	if err := s.PutLogin(ctx, "l", &flow.Login{ExpiresAt: time.Now().Add(time.Minute)}); err != nil {
		t.Fatalf("PutLogin on a low disk: %v", err)
	}

	setMinFree(8 * free) // under a quarter of MinFree
	if err := s.PutLogin(ctx, "l2", &flow.Login{ExpiresAt: time.Now().Add(time.Minute)}); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("PutLogin on a full disk: %v, want ErrDiskFull", err)
	}
	err = s.UpdateDevice(ctx, issued.UserCode, func(*flow.Device) (flow.Verdict, error) { return flow.Delete, nil })
	if !errors.Is(err, ErrDiskFull) {
		t.Fatalf("a delivery (delete) on a full disk: %v, want ErrDiskFull", err)
	}
	if got, err := s.DeviceByUserCode(ctx, issued.UserCode); err != nil || got.Status != flow.Approved {
		t.Fatalf("reading on a full disk: %+v, %v", got, err)
	}

	setMinFree(1) // space is back
	if err := s.CreateDevice(ctx, storetest.NewDevice(time.Minute)); err != nil {
		t.Fatalf("CreateDevice once space is back: %v", err)
	}
	setMinFree(2 * free)
	if !db.diskLow() {
		t.Fatal("a higher min_free did not apply")
	}
	want := []string{
		"the Badger folder's filesystem is nearly full: new device codes are refused (503) until there is more space; codes already issued go on",
		"the Badger folder's filesystem is full: every write of the device flow is refused until there is more space",
		"the Badger folder's filesystem has room for small writes again",
		"the Badger folder's filesystem has room again: issuing device codes",
		"the Badger folder's filesystem is nearly full: new device codes are refused (503) until there is more space; codes already issued go on",
	}
	got := logs.All()
	if len(got) != len(want) {
		t.Fatalf("%d log lines, want %d: %v", len(got), len(want), got)
	}
	for i, e := range got {
		if e.Message != want[i] {
			t.Errorf("line %d: %q, want %q", i, e.Message, want[i])
		}
	}
}

// A failing check says so once and changes nothing: a folder gone from
// under a running Caddy must neither lock out new codes for good nor
// trust a full disk again.
func TestDiskGuardCheckFails(t *testing.T) {
	dir := t.TempDir() + "/store"
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.InfoLevel)
	g := newDiskGuard(Options{Dir: dir, MinFree: math.MaxInt64, Logger: zap.New(core)})
	g.check()
	if !g.low.Load() || !g.full.Load() {
		if _, err := FreeSpace(dir); errors.Is(err, errors.ErrUnsupported) {
			t.Skipf("no free-space check on %s", runtime.GOOS)
		}
		t.Fatal("no disk has MaxInt64 bytes free, yet the guard is not full")
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	g.check()
	g.check()
	if !g.low.Load() || !g.full.Load() {
		t.Fatal("a failing check changed the state")
	}
	if n := logs.FilterMessageSnippet("cannot check the free space").Len(); n != 1 {
		t.Fatalf("%d lines about the failing check, want 1", n)
	}
}

// FreeSpace reads the real filesystem.
func TestFreeSpace(t *testing.T) {
	free, err := FreeSpace(t.TempDir())
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skipf("no free-space check on %s", runtime.GOOS)
	}
	if err != nil || free == 0 {
		t.Fatalf("FreeSpace: %d, %v", free, err)
	}
	if _, err := FreeSpace(t.TempDir() + "/missing"); err == nil {
		t.Fatal("FreeSpace of a missing folder did not fail")
	}
}
