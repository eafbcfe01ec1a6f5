// Package storetest is the conformance suite that every flow.Store backend
// runs from its own tests:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) flow.Store { return openStore(t) })
//	}
//
//	func TestExpiry(t *testing.T) {
//		storetest.RunExpiry(t, func(t *testing.T) flow.Store {
//			return openStore(t, withGrace(storetest.ExpiryGrace))
//		}, time.Sleep)
//	}
//
// open is called once per sub-test and must return a working store; the
// suite never closes it (register that with t.Cleanup). The suite draws
// random device IDs, user codes and keys, so open may hand out stores that
// share one backend (one Redis, say) as long as no other writer uses the
// same keys.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// Concurrency is how many goroutines the atomicity tests run at once.
const Concurrency = 50

// ExpiryGrace is the grace period after Device.ExpiresAt that a store given
// to RunExpiry must be configured with: RunExpiry checks that a record is
// still there a little after its ExpiresAt and gone once ExpiresAt plus
// ExpiryGrace plus ExpirySlack has passed.
const ExpiryGrace = time.Second

// ExpirySlack is how late, at most, a store may drop something after its
// expiry time (ExpiresAt + grace for devices, ExpiresAt for logins, the TTL
// for counters). One second leaves room for backends that keep expiry times
// in whole seconds and round them up.
const ExpirySlack = time.Second

// Run runs the conformance suite against the stores that open returns.
func Run(t *testing.T, open func(t *testing.T) flow.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(*testing.T, flow.Store)
	}{
		{"CreateAndRead", testCreateAndRead},
		{"Copies", testCopies},
		{"Missing", testMissing},
		{"UserCodeTaken", testUserCodeTaken},
		{"UserCodeTakenConcurrent", testUserCodeTakenConcurrent},
		{"Verdicts", testVerdicts},
		{"CallbackError", testCallbackError},
		{"TakeOnce", testTakeOnce},
		{"Increment", testIncrement},
		{"Logins", testLogins},
		{"TakeLoginConcurrent", testTakeLoginConcurrent},
		{"Hits", testHits},
		{"HitsConcurrent", testHitsConcurrent},
		{"Secret", testSecret},
		{"SecretConcurrent", testSecretConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, open(t))
		})
	}
	// Stores upgraded in place hold records of device codes of earlier
	// versions (flow.DeviceID) next to today's (flow.UserCodeID) until
	// they expire: the device tests again, with such IDs.
	earlierIDs.Store(true)
	defer earlierIDs.Store(false)
	for _, tc := range tests[:8] {
		t.Run("EarlierIDs/"+tc.name, func(t *testing.T) {
			tc.fn(t, open(t))
		})
	}
}

// earlierIDs: NewDevice makes IDs of earlier versions' device codes (Run
// sets it for its second round; the tests do not run in parallel).
var earlierIDs atomic.Bool

// RunExpiry checks that devices, logins and counters vanish once their time
// has passed, and that devices stay through their grace period. open must
// configure the store's grace period to ExpiryGrace. wait is called to let
// time pass (time.Sleep for real backends); the whole test waits about
// 2.5 s in total.
func RunExpiry(t *testing.T, open func(t *testing.T) flow.Store, wait func(d time.Duration)) {
	t.Helper()
	t.Run("Expiry", func(t *testing.T) {
		testExpiry(t, open(t), wait)
	})
}

// ---- helpers ----

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func randomKey(prefix string) string {
	var b [12]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// NewDevice returns a pending authorization with every field set, a fresh
// ID and user code, expiring in ttl. Backends may use it in their own tests
// and benchmarks. Its client is one of eight, as a server has a few
// configured clients whose devices ask for the same scopes.
func NewDevice(ttl time.Duration) *flow.Device {
	now := time.Now()
	var client [1]byte
	rand.Read(client[:])
	userCode := flow.Base20.New()
	id := flow.DeviceID(flow.NewDeviceCode())
	if !earlierIDs.Load() {
		hash := make([]byte, 16)
		rand.Read(hash)
		id = flow.UserCodeID(userCode, hash)
	}
	return &flow.Device{
		ID:        id,
		UserCode:  userCode,
		ClientID:  fmt.Sprintf("client-%d", client[0]%8),
		Scope:     "openid profile",
		Status:    flow.Pending,
		CreatedAt: now,
		ExpiresAt: now.Add(ttl),
		Interval:  5 * time.Second,
		SealKey:   bytes.Repeat([]byte{0xAB}, 32),
	}
}

// SetUserCode gives d another user code, and with it the ID that names it
// when d's ID is a flow.UserCodeID.
func SetUserCode(d *flow.Device, userCode string) {
	if _, hash, ok := flow.SplitUserCodeID(d.ID); ok {
		d.ID = flow.UserCodeID(userCode, hash[:])
	}
	d.UserCode = userCode
}

func newLogin(ttl time.Duration) *flow.Login {
	return &flow.Login{
		DeviceID:  flow.DeviceID(flow.NewDeviceCode()),
		Verifier:  randomKey("v-"),
		Browser:   randomKey("b-"),
		ExpiresAt: time.Now().Add(ttl),
	}
}

func cloneDevice(d *flow.Device) *flow.Device {
	c := *d
	c.SealKey = bytes.Clone(d.SealKey)
	c.Sealed = bytes.Clone(d.Sealed)
	return &c
}

// diffDevice describes how got differs from want, or returns "".
// Times compare with Equal (encodings drop the monotonic clock and may
// change the location); nil and empty byte slices count as equal.
func diffDevice(got, want *flow.Device) string {
	if got == nil {
		return "got nil device"
	}
	var d []string
	add := func(field string, g, w any) { d = append(d, fmt.Sprintf("%s = %v, want %v", field, g, w)) }
	if got.ID != want.ID {
		add("ID", got.ID, want.ID)
	}
	if got.UserCode != want.UserCode {
		add("UserCode", got.UserCode, want.UserCode)
	}
	if got.ClientID != want.ClientID {
		add("ClientID", got.ClientID, want.ClientID)
	}
	if got.Scope != want.Scope {
		add("Scope", got.Scope, want.Scope)
	}
	if got.Status != want.Status {
		add("Status", got.Status, want.Status)
	}
	if !got.CreatedAt.Equal(want.CreatedAt) {
		add("CreatedAt", got.CreatedAt, want.CreatedAt)
	}
	if !got.ExpiresAt.Equal(want.ExpiresAt) {
		add("ExpiresAt", got.ExpiresAt, want.ExpiresAt)
	}
	if got.Interval != want.Interval {
		add("Interval", got.Interval, want.Interval)
	}
	if !got.LastPoll.Equal(want.LastPoll) {
		add("LastPoll", got.LastPoll, want.LastPoll)
	}
	if !bytes.Equal(got.SealKey, want.SealKey) {
		add("SealKey", got.SealKey, want.SealKey)
	}
	if !bytes.Equal(got.Sealed, want.Sealed) {
		add("Sealed", got.Sealed, want.Sealed)
	}
	if got.Reason != want.Reason {
		add("Reason", got.Reason, want.Reason)
	}
	return strings.Join(d, "; ")
}

func diffLogin(got, want *flow.Login) string {
	if got == nil {
		return "got nil login"
	}
	if got.DeviceID != want.DeviceID || got.Verifier != want.Verifier || got.Browser != want.Browser || !got.ExpiresAt.Equal(want.ExpiresAt) {
		return fmt.Sprintf("got %+v, want %+v", *got, *want)
	}
	return ""
}

func mustCreate(t *testing.T, s flow.Store, d *flow.Device) {
	t.Helper()
	if err := s.CreateDevice(ctx(t), d); err != nil {
		t.Fatalf("CreateDevice(%s): %v", d.UserCode, err)
	}
}

// peek returns the record under id as UpdateDevice sees it (nil when
// missing), writing nothing.
func peek(t *testing.T, s flow.Store, id string) *flow.Device {
	t.Helper()
	var got *flow.Device
	calls := 0
	err := s.UpdateDevice(ctx(t), id, func(d *flow.Device) (flow.Verdict, error) {
		calls++
		got = d
		return flow.Keep, nil
	})
	if err != nil {
		t.Fatalf("UpdateDevice(Keep): %v", err)
	}
	if calls == 0 {
		t.Fatalf("UpdateDevice with Keep never called fn")
	}
	return got
}

func wantByCode(t *testing.T, s flow.Store, want *flow.Device) {
	t.Helper()
	got, err := s.DeviceByUserCode(ctx(t), want.UserCode)
	if err != nil {
		t.Fatalf("DeviceByUserCode: %v", err)
	}
	if d := diffDevice(got, want); d != "" {
		t.Fatalf("DeviceByUserCode: %s", d)
	}
}

func wantNoCode(t *testing.T, s flow.Store, code string) {
	t.Helper()
	got, err := s.DeviceByUserCode(ctx(t), code)
	if !errors.Is(err, flow.ErrNotFound) {
		t.Fatalf("DeviceByUserCode(%s) = %+v, %v; want ErrNotFound", code, got, err)
	}
}

func wantPeek(t *testing.T, s flow.Store, want *flow.Device) {
	t.Helper()
	if d := diffDevice(peek(t, s, want.ID), want); d != "" {
		t.Fatalf("UpdateDevice saw: %s", d)
	}
}

func wantGone(t *testing.T, s flow.Store, d *flow.Device) {
	t.Helper()
	if got := peek(t, s, d.ID); got != nil {
		t.Fatalf("UpdateDevice saw %+v, want nil (deleted)", got)
	}
	wantNoCode(t, s, d.UserCode)
}

// ---- devices ----

func testCreateAndRead(t *testing.T, s flow.Store) {
	d := NewDevice(10 * time.Minute)
	d.Sealed = []byte("sealed token bytes")
	d.Reason = "some reason"
	d.LastPoll = time.Now().Add(-time.Second)
	d.Status = flow.Approved
	mustCreate(t, s, d)
	wantByCode(t, s, d)
	wantPeek(t, s, d)

	// A second, independent record.
	d2 := NewDevice(10 * time.Minute)
	mustCreate(t, s, d2)
	wantByCode(t, s, d2)
	wantPeek(t, s, d2)
	wantByCode(t, s, d)
}

func testCopies(t *testing.T, s flow.Store) {
	d := NewDevice(10 * time.Minute)
	want := cloneDevice(d)
	mustCreate(t, s, d)

	// Changing the caller's record after CreateDevice changes nothing stored.
	d.Status = flow.Denied
	d.SealKey[0] ^= 0xFF
	wantPeek(t, s, want)

	// Changing what DeviceByUserCode returned changes nothing stored.
	got, err := s.DeviceByUserCode(ctx(t), want.UserCode)
	if err != nil {
		t.Fatal(err)
	}
	got.Interval = time.Hour
	got.SealKey[0] ^= 0xFF
	wantPeek(t, s, want)

	// Changing the record handed to fn and returning Keep writes nothing.
	err = s.UpdateDevice(ctx(t), want.ID, func(d *flow.Device) (flow.Verdict, error) {
		d.Status = flow.Approved
		d.SealKey[0] ^= 0xFF
		return flow.Keep, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wantPeek(t, s, want)
	wantByCode(t, s, want)
}

func testMissing(t *testing.T, s flow.Store) {
	wantNoCode(t, s, flow.Base20.New())
	if l, err := s.TakeLogin(ctx(t), randomKey("login-")); !errors.Is(err, flow.ErrNotFound) {
		t.Errorf("TakeLogin(missing) = %+v, %v; want ErrNotFound", l, err)
	}
	if n, err := s.Count(ctx(t), randomKey("count-")); err != nil || n != 0 {
		t.Errorf("Count(missing) = %d, %v; want 0, nil", n, err)
	}
	for _, v := range []flow.Verdict{flow.Keep, flow.Delete} {
		id := flow.DeviceID(flow.NewDeviceCode())
		calls := 0
		err := s.UpdateDevice(ctx(t), id, func(d *flow.Device) (flow.Verdict, error) {
			calls++
			if d != nil {
				t.Errorf("fn got %+v for a missing record, want nil", d)
			}
			return v, nil
		})
		if err != nil {
			t.Errorf("UpdateDevice(missing, verdict %d): %v", v, err)
		}
		if calls != 1 {
			t.Errorf("UpdateDevice(missing, verdict %d) called fn %d times, want 1", v, calls)
		}
		if got := peek(t, s, id); got != nil {
			t.Errorf("after UpdateDevice(missing, verdict %d) a record exists: %+v", v, got)
		}
	}
}

func testUserCodeTaken(t *testing.T, s flow.Store) {
	a := NewDevice(10 * time.Minute)
	mustCreate(t, s, a)

	b := NewDevice(10 * time.Minute)
	SetUserCode(b, a.UserCode)
	if err := s.CreateDevice(ctx(t), b); !errors.Is(err, flow.ErrUserCodeTaken) {
		t.Fatalf("CreateDevice with a live user code: %v, want ErrUserCodeTaken", err)
	}
	if got := peek(t, s, b.ID); got != nil {
		t.Fatalf("the refused record was stored: %+v", got)
	}
	wantByCode(t, s, a)
	wantPeek(t, s, a)

	// The refused ID can still be used with another code.
	SetUserCode(b, flow.Base20.New())
	mustCreate(t, s, b)
	wantByCode(t, s, b)
	wantByCode(t, s, a)
}

func testUserCodeTakenConcurrent(t *testing.T, s flow.Store) {
	code := flow.Base20.New()
	devs := make([]*flow.Device, Concurrency)
	errs := make([]error, Concurrency)
	var wg sync.WaitGroup
	for i := range devs {
		devs[i] = NewDevice(10 * time.Minute)
		SetUserCode(devs[i], code)
		wg.Go(func() { errs[i] = s.CreateDevice(ctx(t), devs[i]) })
	}
	wg.Wait()
	var winner *flow.Device
	for i, err := range errs {
		switch {
		case err == nil:
			if winner != nil {
				t.Fatalf("two CreateDevice calls with user code %s both succeeded", code)
			}
			winner = devs[i]
		case errors.Is(err, flow.ErrUserCodeTaken):
		default:
			t.Fatalf("CreateDevice: %v", err)
		}
	}
	if winner == nil {
		t.Fatalf("no CreateDevice call with user code %s succeeded", code)
	}
	wantByCode(t, s, winner)
	for _, d := range devs {
		if d != winner {
			if got := peek(t, s, d.ID); got != nil {
				t.Fatalf("a refused record was stored: %+v", got)
			}
		}
	}
}

func testVerdicts(t *testing.T, s flow.Store) {
	tests := []struct {
		name    string
		verdict flow.Verdict
		check   func(t *testing.T, orig, changed *flow.Device)
	}{
		{"Keep", flow.Keep, func(t *testing.T, orig, _ *flow.Device) {
			wantPeek(t, s, orig)
			wantByCode(t, s, orig)
		}},
		{"Save", flow.Save, func(t *testing.T, _, changed *flow.Device) {
			wantPeek(t, s, changed)
			wantByCode(t, s, changed)
		}},
		{"Delete", flow.Delete, func(t *testing.T, orig, _ *flow.Device) {
			wantGone(t, s, orig)
			// The user code is free again.
			again := NewDevice(10 * time.Minute)
			SetUserCode(again, orig.UserCode)
			mustCreate(t, s, again)
			wantByCode(t, s, again)
			wantPeek(t, s, again)
			// And the deleted ID can be created again too.
			SetUserCode(orig, flow.Base20.New())
			mustCreate(t, s, orig)
			wantPeek(t, s, orig)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			orig := NewDevice(10 * time.Minute)
			mustCreate(t, s, orig)
			changed := cloneDevice(orig)
			changed.Status = flow.Approved
			changed.Sealed = []byte("the sealed token")
			changed.LastPoll = time.Now()
			changed.Interval += 5 * time.Second
			calls := 0
			err := s.UpdateDevice(ctx(t), orig.ID, func(d *flow.Device) (flow.Verdict, error) {
				calls++
				if diff := diffDevice(d, orig); diff != "" {
					t.Errorf("fn got: %s", diff)
					return flow.Keep, nil
				}
				d.Status = changed.Status
				d.Sealed = bytes.Clone(changed.Sealed)
				d.LastPoll = changed.LastPoll
				d.Interval = changed.Interval
				return tc.verdict, nil
			})
			if err != nil {
				t.Fatalf("UpdateDevice: %v", err)
			}
			if calls != 1 {
				t.Fatalf("fn called %d times without contention, want 1", calls)
			}
			tc.check(t, orig, changed)
		})
	}
}

func testCallbackError(t *testing.T, s flow.Store) {
	errFn := errors.New("callback failed")
	tests := []struct {
		name    string
		verdict flow.Verdict
		missing bool
	}{
		{"Keep", flow.Keep, false},
		{"Save", flow.Save, false},
		{"Delete", flow.Delete, false},
		{"Missing", flow.Keep, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			orig := NewDevice(10 * time.Minute)
			if !tc.missing {
				mustCreate(t, s, orig)
			}
			changed := cloneDevice(orig)
			changed.Status = flow.Denied
			changed.Reason = "access_denied"
			err := s.UpdateDevice(ctx(t), orig.ID, func(d *flow.Device) (flow.Verdict, error) {
				if d != nil {
					d.Status = changed.Status
					d.Reason = changed.Reason
				}
				return tc.verdict, errFn
			})
			if !errors.Is(err, errFn) {
				t.Fatalf("UpdateDevice returned %v, want fn's error %v", err, errFn)
			}
			// fn's verdict was applied all the same.
			switch {
			case tc.missing:
				wantGone(t, s, orig)
			case tc.verdict == flow.Keep:
				wantPeek(t, s, orig)
			case tc.verdict == flow.Save:
				wantPeek(t, s, changed)
			case tc.verdict == flow.Delete:
				wantGone(t, s, orig)
			}
		})
	}
}

// testTakeOnce: many polls of one approved authorization; exactly one gets
// the token.
func testTakeOnce(t *testing.T, s flow.Store) {
	tests := []struct {
		name string
		take func(d *flow.Device) flow.Verdict
	}{
		{"Delete", func(d *flow.Device) flow.Verdict { return flow.Delete }},
		{"Save", func(d *flow.Device) flow.Verdict {
			d.Status = flow.Denied
			d.Sealed = nil
			d.Reason = "token already issued"
			return flow.Save
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDevice(10 * time.Minute)
			d.Status = flow.Approved
			d.Sealed = []byte("token")
			mustCreate(t, s, d)

			var (
				wg   sync.WaitGroup
				mu   sync.Mutex
				wins int
			)
			start := make(chan struct{})
			for range Concurrency {
				wg.Go(func() {
					<-start
					won := false
					err := s.UpdateDevice(ctx(t), d.ID, func(rec *flow.Device) (flow.Verdict, error) {
						won = false // fn may run again on a newer record
						if rec == nil || rec.Status != flow.Approved {
							return flow.Keep, nil
						}
						if string(rec.Sealed) != "token" {
							t.Errorf("fn got Sealed %q", rec.Sealed)
						}
						won = true
						return tc.take(rec), nil
					})
					if err != nil {
						t.Errorf("UpdateDevice: %v", err)
						return
					}
					if won {
						mu.Lock()
						wins++
						mu.Unlock()
					}
				})
			}
			close(start)
			wg.Wait()
			if wins != 1 {
				t.Fatalf("%d of %d concurrent polls took the approved record, want exactly 1", wins, Concurrency)
			}
		})
	}
}

// testIncrement: concurrent read-modify-write through Save loses no update,
// so the store must retry fn on conflict.
func testIncrement(t *testing.T, s flow.Store) {
	d := NewDevice(10 * time.Minute)
	d.Interval = 0
	mustCreate(t, s, d)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range Concurrency {
		wg.Go(func() {
			<-start
			err := s.UpdateDevice(ctx(t), d.ID, func(rec *flow.Device) (flow.Verdict, error) {
				if rec == nil {
					return flow.Keep, errors.New("record vanished")
				}
				rec.Interval++
				rec.LastPoll = time.Now()
				return flow.Save, nil
			})
			if err != nil {
				t.Errorf("UpdateDevice: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	got := peek(t, s, d.ID)
	if got == nil {
		t.Fatal("record vanished")
	}
	if got.Interval != Concurrency {
		t.Fatalf("after %d concurrent increments Interval = %d, want %d (lost updates)", Concurrency, got.Interval, Concurrency)
	}
	wantByCode(t, s, got)
}

// ---- logins ----

func testLogins(t *testing.T, s flow.Store) {
	key := randomKey("login-")
	l := newLogin(10 * time.Minute)
	if err := s.PutLogin(ctx(t), key, l); err != nil {
		t.Fatalf("PutLogin: %v", err)
	}
	// A second login under another key is independent.
	key2 := randomKey("login-")
	l2 := newLogin(10 * time.Minute)
	if err := s.PutLogin(ctx(t), key2, l2); err != nil {
		t.Fatalf("PutLogin: %v", err)
	}

	got, err := s.TakeLogin(ctx(t), key)
	if err != nil {
		t.Fatalf("TakeLogin: %v", err)
	}
	if d := diffLogin(got, l); d != "" {
		t.Fatalf("TakeLogin: %s", d)
	}
	if got, err := s.TakeLogin(ctx(t), key); !errors.Is(err, flow.ErrNotFound) {
		t.Fatalf("second TakeLogin = %+v, %v; want ErrNotFound", got, err)
	}

	got, err = s.TakeLogin(ctx(t), key2)
	if err != nil {
		t.Fatalf("TakeLogin(other key): %v", err)
	}
	if d := diffLogin(got, l2); d != "" {
		t.Fatalf("TakeLogin(other key): %s", d)
	}

	// The key can be used again after the take.
	l3 := newLogin(10 * time.Minute)
	if err := s.PutLogin(ctx(t), key, l3); err != nil {
		t.Fatalf("PutLogin again: %v", err)
	}
	got, err = s.TakeLogin(ctx(t), key)
	if err != nil {
		t.Fatalf("TakeLogin again: %v", err)
	}
	if d := diffLogin(got, l3); d != "" {
		t.Fatalf("TakeLogin again: %s", d)
	}
}

func testTakeLoginConcurrent(t *testing.T, s flow.Store) {
	key := randomKey("login-")
	l := newLogin(10 * time.Minute)
	if err := s.PutLogin(ctx(t), key, l); err != nil {
		t.Fatalf("PutLogin: %v", err)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		wins int
	)
	start := make(chan struct{})
	for range Concurrency {
		wg.Go(func() {
			<-start
			got, err := s.TakeLogin(ctx(t), key)
			switch {
			case err == nil:
				if d := diffLogin(got, l); d != "" {
					t.Errorf("TakeLogin: %s", d)
				}
				mu.Lock()
				wins++
				mu.Unlock()
			case !errors.Is(err, flow.ErrNotFound):
				t.Errorf("TakeLogin: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d of %d concurrent TakeLogin calls got the login, want exactly 1", wins, Concurrency)
	}
}

// ---- counters ----

func testHits(t *testing.T, s flow.Store) {
	a, b := randomKey("hits-a-"), randomKey("hits-b-")
	steps := []struct {
		key   string
		hit   bool
		wantA int64
		wantB int64
	}{
		{a, true, 1, 0},
		{a, true, 2, 0},
		{b, true, 2, 1},
		{a, true, 3, 1},
		{a, false, 3, 1},
		{b, false, 3, 1},
		{b, true, 3, 2},
	}
	for i, st := range steps {
		if st.hit {
			want := st.wantA
			if st.key == b {
				want = st.wantB
			}
			n, err := s.Hit(ctx(t), st.key, time.Hour)
			if err != nil {
				t.Fatalf("step %d: Hit: %v", i, err)
			}
			if n != want {
				t.Fatalf("step %d: Hit = %d, want %d", i, n, want)
			}
		}
		// Count reads without changing, however often.
		for range 2 {
			if n, err := s.Count(ctx(t), a); err != nil || n != st.wantA {
				t.Fatalf("step %d: Count(a) = %d, %v; want %d", i, n, err, st.wantA)
			}
			if n, err := s.Count(ctx(t), b); err != nil || n != st.wantB {
				t.Fatalf("step %d: Count(b) = %d, %v; want %d", i, n, err, st.wantB)
			}
		}
	}
}

func testHitsConcurrent(t *testing.T, s flow.Store) {
	key := randomKey("hits-")
	got := make([]int64, Concurrency)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range got {
		wg.Go(func() {
			<-start
			n, err := s.Hit(ctx(t), key, time.Hour)
			if err != nil {
				t.Errorf("Hit: %v", err)
			}
			got[i] = n
		})
	}
	close(start)
	wg.Wait()
	sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
	for i, n := range got {
		if n != int64(i+1) {
			t.Fatalf("concurrent Hit results %v, want each of 1..%d once", got, Concurrency)
		}
	}
	if n, err := s.Count(ctx(t), key); err != nil || n != Concurrency {
		t.Fatalf("Count = %d, %v; want %d", n, err, Concurrency)
	}
}

// ---- secrets ----

func randomSecret() ([]byte, error) {
	b := make([]byte, 32)
	rand.Read(b)
	return b, nil
}

func testSecret(t *testing.T, s flow.Store) {
	name := randomKey("secret-")
	first, err := s.Secret(ctx(t), name, randomSecret)
	if err != nil {
		t.Fatalf("Secret: %v", err)
	}
	if len(first) != 32 {
		t.Fatalf("Secret returned %d bytes, want the 32 generated", len(first))
	}
	for range 3 {
		again, err := s.Secret(ctx(t), name, randomSecret)
		if err != nil {
			t.Fatalf("Secret again: %v", err)
		}
		if !bytes.Equal(again, first) {
			t.Fatalf("Secret changed: %x, then %x", first, again)
		}
	}

	// Another name has another secret.
	other, err := s.Secret(ctx(t), randomKey("secret-"), randomSecret)
	if err != nil {
		t.Fatalf("Secret(other): %v", err)
	}
	if bytes.Equal(other, first) {
		t.Fatal("two names share one secret")
	}

	// A failing generate is reported and stores nothing.
	errGen := errors.New("no entropy")
	name2 := randomKey("secret-")
	if _, err := s.Secret(ctx(t), name2, func() ([]byte, error) { return nil, errGen }); !errors.Is(err, errGen) {
		t.Fatalf("Secret with failing generate: %v, want %v", err, errGen)
	}
	want := []byte("a fixed secret \x00\xff binary")
	got, err := s.Secret(ctx(t), name2, func() ([]byte, error) { return bytes.Clone(want), nil })
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("Secret after failed generate = %q, %v; want %q", got, err, want)
	}

	// The returned slice is the caller's: changing it changes nothing stored.
	got[0] ^= 0xFF
	if again, err := s.Secret(ctx(t), name2, randomSecret); err != nil || !bytes.Equal(again, want) {
		t.Fatalf("Secret after changing a returned slice = %q, %v; want %q", again, err, want)
	}
}

func testSecretConcurrent(t *testing.T, s flow.Store) {
	name := randomKey("secret-")
	got := make([][]byte, Concurrency)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range got {
		wg.Go(func() {
			<-start
			v, err := s.Secret(ctx(t), name, randomSecret)
			if err != nil {
				t.Errorf("Secret: %v", err)
			}
			got[i] = v
		})
	}
	close(start)
	wg.Wait()
	for i, v := range got {
		if len(v) == 0 || !bytes.Equal(v, got[0]) {
			t.Fatalf("concurrent first Secret calls disagree: caller 0 got %x, caller %d got %x", got[0], i, v)
		}
	}
}

// ---- expiry ----

func testExpiry(t *testing.T, s flow.Store, wait func(time.Duration)) {
	t0 := time.Now()
	waitUntil := func(d time.Duration) {
		if left := d - time.Since(t0); left > 0 {
			wait(left)
		}
	}

	// Short-lived: a device expiring in 300 ms (kept through the grace
	// period, to t0+1.3s), a login and a counter living 1 s.
	short := NewDevice(300 * time.Millisecond)
	mustCreate(t, s, short)
	loginKey := randomKey("login-")
	if err := s.PutLogin(ctx(t), loginKey, newLogin(time.Second)); err != nil {
		t.Fatalf("PutLogin: %v", err)
	}
	hitKey := randomKey("hits-")
	if n, err := s.Hit(ctx(t), hitKey, time.Second); err != nil || n != 1 {
		t.Fatalf("Hit = %d, %v; want 1", n, err)
	}

	// Long-lived controls that must survive the wait.
	long := NewDevice(time.Hour)
	mustCreate(t, s, long)
	longLoginKey := randomKey("login-")
	longLogin := newLogin(time.Hour)
	if err := s.PutLogin(ctx(t), longLoginKey, longLogin); err != nil {
		t.Fatalf("PutLogin: %v", err)
	}
	longHitKey := randomKey("hits-")
	if _, err := s.Hit(ctx(t), longHitKey, time.Hour); err != nil {
		t.Fatalf("Hit: %v", err)
	}

	wantPeek(t, s, short)
	wantByCode(t, s, short)

	// Past ExpiresAt but within the grace period, UpdateDevice still sees
	// the record (so a late poll can be told expired_token) and can save it.
	waitUntil(500 * time.Millisecond)
	if time.Since(t0) < 300*time.Millisecond+ExpiryGrace {
		err := s.UpdateDevice(ctx(t), short.ID, func(d *flow.Device) (flow.Verdict, error) {
			if d == nil {
				return flow.Keep, errors.New("record dropped before ExpiresAt + grace")
			}
			d.LastPoll = time.Now()
			return flow.Save, nil
		})
		if err != nil {
			t.Fatalf("UpdateDevice within the grace period: %v", err)
		}
	} else {
		t.Logf("too slow to check the grace period (%v passed)", time.Since(t0))
	}
	// The counter lives on until its TTL is up.
	if n, err := s.Count(ctx(t), hitKey); err != nil || n != 1 {
		t.Fatalf("Count before the TTL = %d, %v; want 1", n, err)
	}

	// Past ExpiresAt + grace (and past the login's and counter's time),
	// plus slack: all short-lived things are gone.
	waitUntil(300*time.Millisecond + ExpiryGrace + ExpirySlack + 200*time.Millisecond)

	wantGone(t, s, short)
	if l, err := s.TakeLogin(ctx(t), loginKey); !errors.Is(err, flow.ErrNotFound) {
		t.Errorf("TakeLogin after expiry = %+v, %v; want ErrNotFound", l, err)
	}
	if n, err := s.Count(ctx(t), hitKey); err != nil || n != 0 {
		t.Errorf("Count after the TTL = %d, %v; want 0", n, err)
	}
	if n, err := s.Hit(ctx(t), hitKey, time.Hour); err != nil || n != 1 {
		t.Errorf("Hit after the TTL = %d, %v; want 1 (a new window)", n, err)
	}
	// The expired record's user code is free again.
	again := NewDevice(time.Hour)
	SetUserCode(again, short.UserCode)
	mustCreate(t, s, again)
	wantByCode(t, s, again)

	// The long-lived ones are all still there.
	wantPeek(t, s, long)
	wantByCode(t, s, long)
	if got, err := s.TakeLogin(ctx(t), longLoginKey); err != nil {
		t.Errorf("TakeLogin(long-lived): %v", err)
	} else if d := diffLogin(got, longLogin); d != "" {
		t.Errorf("TakeLogin(long-lived): %s", d)
	}
	if n, err := s.Count(ctx(t), longHitKey); err != nil || n != 1 {
		t.Errorf("Count(long-lived) = %d, %v; want 1", n, err)
	}
}
