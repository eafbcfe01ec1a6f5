// Package storetest is the conformance suite that every flow.Store backend
// runs from its own tests:
//
//	func TestConformance(t *testing.T) {
//		db := openDB(t)
//		storetest.Run(t, func(t *testing.T, namespace string) flow.Store {
//			return db.Store(namespace)
//		})
//	}
//
//	func TestExpiry(t *testing.T) {
//		db := openDB(t, withGrace(storetest.ExpiryGrace))
//		storetest.RunExpiry(t, func(t *testing.T, namespace string) flow.Store {
//			return db.Store(namespace)
//		}, time.Sleep)
//	}
//
// open returns the store of one handler, of the given namespace, and must
// work; the suite never closes it (register that with t.Cleanup). Within
// one test, the stores that open returns must share one backend: stores
// of one namespace share their data (as two handlers of one config do
// across a reload), stores of different namespaces must not see each
// other's. The suite draws random namespaces, user codes and keys, so all
// of its tests may share one backend as long as no other writer uses it.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
	"github.com/caddy-device-flow/caddy-device-flow/flow/codes"
)

// Open returns the store of namespace on the backend under test.
type Open func(t *testing.T, namespace string) flow.Store

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
func Run(t *testing.T, open Open) {
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
		{"PollFields", testPollFields},
		{"CallbackError", testCallbackError},
		{"TakeOnce", testTakeOnce},
		{"Increment", testIncrement},
		{"Logins", testLogins},
		{"TakeLoginConcurrent", testTakeLoginConcurrent},
		{"LoginState", testLoginState},
		{"Hits", testHits},
		{"HitsConcurrent", testHitsConcurrent},
		{"TallySteps", testTallySteps},
		{"Counters", testCounters},
		{"Secret", testSecret},
		{"SecretConcurrent", testSecretConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, open(t, randomKey("ns-")))
		})
	}
	t.Run("Namespaces", func(t *testing.T) { testNamespaces(t, open) })
	t.Run("Devices", func(t *testing.T) { testDevices(t, open) })
}

// RunExpiry checks that devices, logins and counters vanish once their time
// has passed, and that devices stay through their grace period. open must
// configure the store's grace period to ExpiryGrace. wait is called to let
// time pass (time.Sleep for real backends); the whole test waits about
// 2.5 s in total.
func RunExpiry(t *testing.T, open Open, wait func(d time.Duration)) {
	t.Helper()
	t.Run("Expiry", func(t *testing.T) {
		testExpiry(t, open(t, randomKey("ns-")), wait)
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

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// NewDevice returns a pending authorization with every field of a new one
// set, a random user code and code hash, expiring in ttl. Backends may use
// it in their own tests and benchmarks. Its client is one of eight, as a
// server has a few configured clients whose devices ask for the same
// scopes.
func NewDevice(ttl time.Duration) *flow.Device {
	now := time.Now()
	var client [1]byte
	rand.Read(client[:])
	return &flow.Device{
		UserCode:  codes.Base20.New(),
		CodeHash:  randomBytes(16),
		ClientID:  fmt.Sprintf("client-%d", client[0]%8),
		Scope:     "openid profile",
		Status:    flow.Pending,
		CreatedAt: now,
		ExpiresAt: now.Add(ttl),
		Interval:  5 * time.Second,
		SealKey:   randomBytes(32),
		IssuedTo:  "192.0.2.1",
	}
}

func newLogin(ttl time.Duration) *flow.Login {
	return &flow.Login{
		UserCode:  codes.Base20.New(),
		CodeHash:  randomBytes(16),
		Verifier:  randomKey("v-"),
		Browser:   randomKey("b-"),
		ExpiresAt: time.Now().Add(ttl),
	}
}

func cloneDevice(d *flow.Device) *flow.Device {
	c := *d
	c.CodeHash = bytes.Clone(d.CodeHash)
	c.SealKey = bytes.Clone(d.SealKey)
	c.Sealed = bytes.Clone(d.Sealed)
	c.Networks = slices.Clone(d.Networks)
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
	if got.UserCode != want.UserCode {
		add("UserCode", got.UserCode, want.UserCode)
	}
	if !bytes.Equal(got.CodeHash, want.CodeHash) {
		add("CodeHash", got.CodeHash, want.CodeHash)
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
	if got.Retried != want.Retried {
		add("Retried", got.Retried, want.Retried)
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
	if got.IssuedTo != want.IssuedTo {
		add("IssuedTo", got.IssuedTo, want.IssuedTo)
	}
	if !slices.Equal(got.Networks, want.Networks) {
		add("Networks", got.Networks, want.Networks)
	}
	if got.Sub != want.Sub || got.ApprovedFrom != want.ApprovedFrom {
		add("Sub, ApprovedFrom", got.Sub+", "+got.ApprovedFrom, want.Sub+", "+want.ApprovedFrom)
	}
	return strings.Join(d, "; ")
}

func diffLogin(got, want *flow.Login) string {
	if got == nil {
		return "got nil login"
	}
	if got.UserCode != want.UserCode || !bytes.Equal(got.CodeHash, want.CodeHash) || got.Verifier != want.Verifier ||
		got.Browser != want.Browser || got.State != want.State || !got.ExpiresAt.Equal(want.ExpiresAt) {
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

// peek returns the record under the user code as UpdateDevice sees it
// (nil when missing), writing nothing.
func peek(t *testing.T, s flow.Store, userCode string) *flow.Device {
	t.Helper()
	var got *flow.Device
	calls := 0
	err := s.UpdateDevice(ctx(t), userCode, func(d *flow.Device) (flow.Verdict, error) {
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

// save runs UpdateDevice with fn's changes and Save, failing on a missing
// record.
func save(t *testing.T, s flow.Store, userCode string, change func(d *flow.Device)) {
	t.Helper()
	err := s.UpdateDevice(ctx(t), userCode, func(d *flow.Device) (flow.Verdict, error) {
		if d == nil {
			return flow.Keep, errors.New("no record")
		}
		change(d)
		return flow.Save, nil
	})
	if err != nil {
		t.Fatalf("UpdateDevice(Save): %v", err)
	}
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

// wantRecord checks what both UpdateDevice and DeviceByUserCode see.
func wantRecord(t *testing.T, s flow.Store, want *flow.Device) {
	t.Helper()
	if d := diffDevice(peek(t, s, want.UserCode), want); d != "" {
		t.Fatalf("UpdateDevice saw: %s", d)
	}
	wantByCode(t, s, want)
}

func wantGone(t *testing.T, s flow.Store, userCode string) {
	t.Helper()
	if got := peek(t, s, userCode); got != nil {
		t.Fatalf("UpdateDevice saw %+v, want nil (deleted)", got)
	}
	wantNoCode(t, s, userCode)
}

// together runs fn(0) to fn(Concurrency-1) in as many goroutines,
// released at once, and waits for them.
func together(fn func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range Concurrency {
		wg.Go(func() {
			<-start
			fn(i)
		})
	}
	close(start)
	wg.Wait()
}

func count(won []bool) (n int) {
	for _, w := range won {
		if w {
			n++
		}
	}
	return n
}

// ---- devices ----

func testCreateAndRead(t *testing.T, s flow.Store) {
	d := NewDevice(10 * time.Minute)
	d.Sealed = []byte("sealed token bytes")
	d.Reason = "some reason"
	d.LastPoll = time.Now().Add(-time.Second)
	d.Retried = true
	d.Status = flow.Approved
	d.IssuedTo = "2001:db8::1"
	d.Networks = []string{"192.0.2.0/24", "2001:db8::/56"}
	d.Sub, d.ApprovedFrom = "248289761001", "192.0.2.7"
	mustCreate(t, s, d)
	wantRecord(t, s, d)

	// A second, independent record.
	d2 := NewDevice(10 * time.Minute)
	mustCreate(t, s, d2)
	wantRecord(t, s, d2)
	wantRecord(t, s, d)
}

func testCopies(t *testing.T, s flow.Store) {
	d := NewDevice(10 * time.Minute)
	want := cloneDevice(d)
	mustCreate(t, s, d)

	// Changing the caller's record after CreateDevice changes nothing stored.
	d.Status = flow.Denied
	d.SealKey[0] ^= 0xFF
	d.CodeHash[0] ^= 0xFF
	wantRecord(t, s, want)

	// Changing what DeviceByUserCode returned changes nothing stored.
	got, err := s.DeviceByUserCode(ctx(t), want.UserCode)
	if err != nil {
		t.Fatal(err)
	}
	got.Interval = time.Hour
	got.SealKey[0] ^= 0xFF
	got.CodeHash[0] ^= 0xFF
	wantRecord(t, s, want)

	// Changing the record handed to fn and returning Keep writes nothing.
	err = s.UpdateDevice(ctx(t), want.UserCode, func(d *flow.Device) (flow.Verdict, error) {
		d.Status = flow.Approved
		d.LastPoll = time.Now()
		d.SealKey[0] ^= 0xFF
		d.CodeHash[0] ^= 0xFF
		return flow.Keep, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wantRecord(t, s, want)
}

func testMissing(t *testing.T, s flow.Store) {
	wantNoCode(t, s, codes.Base20.New())
	if l, err := s.TakeLogin(ctx(t), randomKey("login-"), ""); !errors.Is(err, flow.ErrNotFound) {
		t.Errorf("TakeLogin(missing) = %+v, %v; want ErrNotFound", l, err)
	}
	if n, err := Count(ctx(t), s, randomKey("count-")); err != nil || n != 0 {
		t.Errorf("Count(missing) = %d, %v; want 0, nil", n, err)
	}
	for _, v := range []flow.Verdict{flow.Keep, flow.Save, flow.Delete} {
		userCode := codes.Base20.New()
		calls := 0
		err := s.UpdateDevice(ctx(t), userCode, func(d *flow.Device) (flow.Verdict, error) {
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
		if got := peek(t, s, userCode); got != nil {
			t.Errorf("after UpdateDevice(missing, verdict %d) a record exists: %+v", v, got)
		}
	}
}

func testUserCodeTaken(t *testing.T, s flow.Store) {
	a := NewDevice(10 * time.Minute)
	mustCreate(t, s, a)

	b := NewDevice(10 * time.Minute)
	b.UserCode = a.UserCode
	if err := s.CreateDevice(ctx(t), b); !errors.Is(err, flow.ErrUserCodeTaken) {
		t.Fatalf("CreateDevice with a live user code: %v, want ErrUserCodeTaken", err)
	}
	wantRecord(t, s, a)

	// The refused record can be stored under another code.
	b.UserCode = codes.Base20.New()
	mustCreate(t, s, b)
	wantRecord(t, s, b)
	wantRecord(t, s, a)
}

func testUserCodeTakenConcurrent(t *testing.T, s flow.Store) {
	code := codes.Base20.New()
	devs := make([]*flow.Device, Concurrency)
	errs := make([]error, Concurrency)
	for i := range devs {
		devs[i] = NewDevice(10 * time.Minute)
		devs[i].UserCode = code
	}
	together(func(i int) { errs[i] = s.CreateDevice(ctx(t), devs[i]) })
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
	wantRecord(t, s, winner)
}

func testVerdicts(t *testing.T, s flow.Store) {
	tests := []struct {
		name    string
		verdict flow.Verdict
		check   func(t *testing.T, orig, changed *flow.Device)
	}{
		{"Keep", flow.Keep, func(t *testing.T, orig, _ *flow.Device) {
			wantRecord(t, s, orig)
		}},
		{"Save", flow.Save, func(t *testing.T, _, changed *flow.Device) {
			wantRecord(t, s, changed)
		}},
		{"Delete", flow.Delete, func(t *testing.T, orig, _ *flow.Device) {
			wantGone(t, s, orig.UserCode)
			// The user code is free again, for a new record that has
			// nothing of the old one.
			again := NewDevice(10 * time.Minute)
			again.UserCode = orig.UserCode
			mustCreate(t, s, again)
			wantRecord(t, s, again)
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
			err := s.UpdateDevice(ctx(t), orig.UserCode, func(d *flow.Device) (flow.Verdict, error) {
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

// testPollFields: pending polls change only LastPoll and Retried, which a
// store may keep apart from the rest of the record; fn must still always
// get the whole record as last saved.
func testPollFields(t *testing.T, s flow.Store) {
	d := NewDevice(10 * time.Minute)
	mustCreate(t, s, d)
	want := cloneDevice(d)
	t0 := time.Now()
	steps := []struct {
		name   string
		change func(d *flow.Device)
	}{
		{"first poll", func(d *flow.Device) { d.LastPoll = t0 }},
		{"a forgiven retry", func(d *flow.Device) { d.Retried = true }},
		{"a later poll", func(d *flow.Device) { d.LastPoll, d.Retried = t0.Add(5*time.Second), false }},
		{"slow_down", func(d *flow.Device) { d.LastPoll, d.Interval = t0.Add(7*time.Second), d.Interval+5*time.Second }},
		{"a poll after slow_down", func(d *flow.Device) { d.LastPoll, d.Retried = t0.Add(17*time.Second), true }},
		{"approval, poll fields untouched", func(d *flow.Device) { d.Status, d.Sealed = flow.Approved, []byte("token") }},
		{"a poll moved back", func(d *flow.Device) { d.LastPoll = t0.Add(-time.Hour) }},
		{"the poll time cleared", func(d *flow.Device) { d.LastPoll, d.Retried = time.Time{}, false }},
	}
	for _, st := range steps {
		save(t, s, d.UserCode, st.change)
		st.change(want)
		if diff := diffDevice(peek(t, s, d.UserCode), want); diff != "" {
			t.Fatalf("after %s, UpdateDevice saw: %s", st.name, diff)
		}
		wantByCode(t, s, want)
	}

	// A record deleted and created again under the same user code has
	// nothing of the old one's polls.
	save(t, s, d.UserCode, func(d *flow.Device) { d.LastPoll, d.Retried = t0.Add(time.Minute), true })
	if err := s.UpdateDevice(ctx(t), d.UserCode, func(*flow.Device) (flow.Verdict, error) { return flow.Delete, nil }); err != nil {
		t.Fatal(err)
	}
	again := NewDevice(10 * time.Minute)
	again.UserCode = d.UserCode
	mustCreate(t, s, again)
	wantRecord(t, s, again)
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
			err := s.UpdateDevice(ctx(t), orig.UserCode, func(d *flow.Device) (flow.Verdict, error) {
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
				wantGone(t, s, orig.UserCode)
			case tc.verdict == flow.Keep:
				wantRecord(t, s, orig)
			case tc.verdict == flow.Save:
				wantRecord(t, s, changed)
			case tc.verdict == flow.Delete:
				wantGone(t, s, orig.UserCode)
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

			won := make([]bool, Concurrency)
			together(func(i int) {
				err := s.UpdateDevice(ctx(t), d.UserCode, func(rec *flow.Device) (flow.Verdict, error) {
					won[i] = false // fn may run again on a newer record
					if rec == nil || rec.Status != flow.Approved {
						return flow.Keep, nil
					}
					if string(rec.Sealed) != "token" {
						t.Errorf("fn got Sealed %q", rec.Sealed)
					}
					won[i] = true
					return tc.take(rec), nil
				})
				if err != nil {
					t.Errorf("UpdateDevice: %v", err)
				}
			})
			if wins := count(won); wins != 1 {
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
	together(func(int) {
		err := s.UpdateDevice(ctx(t), d.UserCode, func(rec *flow.Device) (flow.Verdict, error) {
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
	got := peek(t, s, d.UserCode)
	if got == nil {
		t.Fatal("record vanished")
	}
	if got.Interval != Concurrency {
		t.Fatalf("after %d concurrent increments Interval = %d, want %d (lost updates)", Concurrency, got.Interval, Concurrency)
	}
	wantRecord(t, s, got)
}

// testNamespaces: what the store of one namespace holds, the store of
// another on the same backend does not see, and can hold under the same
// names for itself; a second store of the same namespace (the handler
// after a config reload) sees and changes the same data.
func testNamespaces(t *testing.T, open Open) {
	nsA, nsB := randomKey("ns-"), randomKey("ns-")
	a, b := open(t, nsA), open(t, nsB)

	d := NewDevice(10 * time.Minute)
	mustCreate(t, a, d)
	save(t, a, d.UserCode, func(d *flow.Device) { d.LastPoll, d.Retried = time.Now(), true })
	wantA := peek(t, a, d.UserCode)
	loginKey, hitKey, secretName := randomKey("login-"), randomKey("hits-"), randomKey("secret-")
	loginA := newLogin(10 * time.Minute)
	if err := a.PutLogin(ctx(t), loginKey, loginA); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := Hit(ctx(t), a, hitKey, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	secretA, err := a.Secret(ctx(t), secretName, randomSecret)
	if err != nil {
		t.Fatal(err)
	}

	// Namespace B sees none of it.
	wantGone(t, b, d.UserCode)
	if l, err := b.TakeLogin(ctx(t), loginKey, ""); !errors.Is(err, flow.ErrNotFound) {
		t.Fatalf("TakeLogin in another namespace = %+v, %v; want ErrNotFound", l, err)
	}
	if n, err := Count(ctx(t), b, hitKey); err != nil || n != 0 {
		t.Fatalf("Count in another namespace = %d, %v; want 0", n, err)
	}
	secretB, err := b.Secret(ctx(t), secretName, randomSecret)
	if err != nil || bytes.Equal(secretA, secretB) {
		t.Fatalf("Secret in another namespace = %x, %v; want another than %x", secretB, err, secretA)
	}

	// B keeps its own under the same names, and changes them.
	dB := NewDevice(10 * time.Minute)
	dB.UserCode = d.UserCode
	mustCreate(t, b, dB)
	save(t, b, dB.UserCode, func(d *flow.Device) { d.Status, d.Reason = flow.Denied, "denied in B" })
	dB.Status, dB.Reason = flow.Denied, "denied in B"
	loginB := newLogin(10 * time.Minute)
	if err := b.PutLogin(ctx(t), loginKey, loginB); err != nil {
		t.Fatal(err)
	}
	if n, err := Hit(ctx(t), b, hitKey, time.Hour); err != nil || n != 1 {
		t.Fatalf("Hit in another namespace = %d, %v; want 1", n, err)
	}

	// A second store of namespace A sees A's data as A left it.
	a2 := open(t, nsA)
	wantRecord(t, a2, wantA)
	if got, err := a2.TakeLogin(ctx(t), loginKey, ""); err != nil || diffLogin(got, loginA) != "" {
		t.Fatalf("TakeLogin in the same namespace = %+v, %v; want %+v", got, err, loginA)
	}
	if n, err := Count(ctx(t), a2, hitKey); err != nil || n != 2 {
		t.Fatalf("Count in the same namespace = %d, %v; want 2", n, err)
	}
	if got, err := a2.Secret(ctx(t), secretName, randomSecret); err != nil || !bytes.Equal(got, secretA) {
		t.Fatalf("Secret in the same namespace = %x, %v; want %x", got, err, secretA)
	}
	// What one store of A changes, the other sees; B's stay B's.
	save(t, a2, d.UserCode, func(d *flow.Device) { d.Status = flow.Approved })
	wantA.Status = flow.Approved
	wantRecord(t, a, wantA)
	if err := a.UpdateDevice(ctx(t), d.UserCode, func(*flow.Device) (flow.Verdict, error) { return flow.Delete, nil }); err != nil {
		t.Fatal(err)
	}
	wantGone(t, a2, d.UserCode)
	wantRecord(t, b, dB)
	if got, err := b.TakeLogin(ctx(t), loginKey, ""); err != nil || diffLogin(got, loginB) != "" {
		t.Fatalf("TakeLogin in namespace B = %+v, %v; want %+v", got, err, loginB)
	}
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

	got, err := s.TakeLogin(ctx(t), key, "")
	if err != nil {
		t.Fatalf("TakeLogin: %v", err)
	}
	if d := diffLogin(got, l); d != "" {
		t.Fatalf("TakeLogin: %s", d)
	}
	if got, err := s.TakeLogin(ctx(t), key, ""); !errors.Is(err, flow.ErrNotFound) {
		t.Fatalf("second TakeLogin = %+v, %v; want ErrNotFound", got, err)
	}

	got, err = s.TakeLogin(ctx(t), key2, "")
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
	got, err = s.TakeLogin(ctx(t), key, "")
	if err != nil {
		t.Fatalf("TakeLogin again: %v", err)
	}
	if d := diffLogin(got, l3); d != "" {
		t.Fatalf("TakeLogin again: %s", d)
	}
}

// testLoginState: a login is taken only with its own state; any other
// state leaves it where it is, for the callback that brings the right one.
func testLoginState(t *testing.T, s flow.Store) {
	key := randomKey("login-")
	l := newLogin(10 * time.Minute)
	l.State = randomKey("state-")
	if err := s.PutLogin(ctx(t), key, l); err != nil {
		t.Fatalf("PutLogin: %v", err)
	}
	for _, wrong := range []string{"", "x", l.State + "x", l.State[:len(l.State)-1]} {
		if got, err := s.TakeLogin(ctx(t), key, wrong); !errors.Is(err, flow.ErrNotFound) {
			t.Fatalf("TakeLogin with state %q = %+v, %v; want ErrNotFound", wrong, got, err)
		}
	}
	got, err := s.TakeLogin(ctx(t), key, l.State)
	if err != nil || diffLogin(got, l) != "" {
		t.Fatalf("TakeLogin with its state = %+v, %v; want %+v", got, err, l)
	}
	if got, err := s.TakeLogin(ctx(t), key, l.State); !errors.Is(err, flow.ErrNotFound) {
		t.Fatalf("TakeLogin again = %+v, %v; want ErrNotFound", got, err)
	}
}

func testTakeLoginConcurrent(t *testing.T, s flow.Store) {
	key := randomKey("login-")
	l := newLogin(10 * time.Minute)
	if err := s.PutLogin(ctx(t), key, l); err != nil {
		t.Fatalf("PutLogin: %v", err)
	}
	won := make([]bool, Concurrency)
	together(func(i int) {
		got, err := s.TakeLogin(ctx(t), key, "")
		switch {
		case err == nil:
			if d := diffLogin(got, l); d != "" {
				t.Errorf("TakeLogin: %s", d)
			}
			won[i] = true
		case !errors.Is(err, flow.ErrNotFound):
			t.Errorf("TakeLogin: %v", err)
		}
	})
	if wins := count(won); wins != 1 {
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
			n, err := Hit(ctx(t), s, st.key, time.Hour)
			if err != nil {
				t.Fatalf("step %d: Hit: %v", i, err)
			}
			if n != want {
				t.Fatalf("step %d: Hit = %d, want %d", i, n, want)
			}
		}
		// Count reads without changing, however often.
		for range 2 {
			if n, err := Count(ctx(t), s, a); err != nil || n != st.wantA {
				t.Fatalf("step %d: Count(a) = %d, %v; want %d", i, n, err, st.wantA)
			}
			if n, err := Count(ctx(t), s, b); err != nil || n != st.wantB {
				t.Fatalf("step %d: Count(b) = %d, %v; want %d", i, n, err, st.wantB)
			}
		}
	}
}

// testTallySteps: steps are taken in order, reads see the hits before
// them, and a hit past its Limit ends the call.
func testTallySteps(t *testing.T, s flow.Store) {
	a, b, c := randomKey("t-a-"), randomKey("t-b-"), randomKey("t-c-")
	hour := time.Hour
	tests := []struct {
		name  string
		steps []flow.Tally
		want  []int64
	}{
		{"reads of nothing", []flow.Tally{flow.Read(a), flow.Read(b)}, []int64{0, 0}},
		{"hit then read", []flow.Tally{flow.Hit(a, hour), flow.Read(a), flow.Hit(b, hour)}, []int64{1, 1, 1}},
		{"within the limit", []flow.Tally{{Key: a, TTL: hour, Limit: 2}, flow.Hit(b, hour), flow.Read(c)}, []int64{2, 2, 0}},
		{"past the limit stops", []flow.Tally{{Key: a, TTL: hour, Limit: 2}, flow.Hit(b, hour), flow.Read(c)}, []int64{3}},
		{"a read's limit is no limit", []flow.Tally{{Key: a, Limit: 1}, flow.Hit(c, hour)}, []int64{3, 1}},
		{"later steps were not taken", []flow.Tally{flow.Read(a), flow.Read(b), flow.Read(c)}, []int64{3, 2, 1}},
		{"the same counter twice", []flow.Tally{flow.Hit(c, hour), flow.Hit(c, hour)}, []int64{2, 3}},
	}
	for _, tc := range tests {
		got, err := s.Tally(ctx(t), tc.steps...)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Fatalf("%s: Tally = %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
}

// testCounters: Counters lists the live counters under a prefix, with
// their values, and no others.
func testCounters(t *testing.T, s flow.Store) {
	prefix := randomKey("list-") + ":"
	want := map[string]int64{prefix + "x": 2, prefix + "2001:db8::/64:7": 1}
	for key, n := range want {
		for range n {
			if _, err := Hit(ctx(t), s, key, time.Hour); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := Hit(ctx(t), s, "other-"+prefix, time.Hour); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	if err := s.Counters(ctx(t), prefix, func(key string, n int64) bool { got[key] = n; return true }); err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(got, want) {
		t.Fatalf("Counters(%q) = %v, want %v", prefix, got, want)
	}
	calls := 0
	if err := s.Counters(ctx(t), prefix, func(string, int64) bool { calls++; return false }); err != nil || calls != 1 {
		t.Fatalf("Counters stopped by fn: %d calls, %v; want 1, nil", calls, err)
	}
}

func testHitsConcurrent(t *testing.T, s flow.Store) {
	key := randomKey("hits-")
	got := make([]int64, Concurrency)
	together(func(i int) {
		n, err := Hit(ctx(t), s, key, time.Hour)
		if err != nil {
			t.Errorf("Hit: %v", err)
		}
		got[i] = n
	})
	sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
	for i, n := range got {
		if n != int64(i+1) {
			t.Fatalf("concurrent Hit results %v, want each of 1..%d once", got, Concurrency)
		}
	}
	if n, err := Count(ctx(t), s, key); err != nil || n != Concurrency {
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
	together(func(i int) {
		v, err := s.Secret(ctx(t), name, randomSecret)
		if err != nil {
			t.Errorf("Secret: %v", err)
		}
		got[i] = v
	})
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
	if n, err := Hit(ctx(t), s, hitKey, time.Second); err != nil || n != 1 {
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
	if _, err := Hit(ctx(t), s, longHitKey, time.Hour); err != nil {
		t.Fatalf("Hit: %v", err)
	}

	wantRecord(t, s, short)

	// Past ExpiresAt but within the grace period, UpdateDevice still sees
	// the record (so a late poll can be told expired_token) and can save it.
	waitUntil(500 * time.Millisecond)
	if time.Since(t0) < 300*time.Millisecond+ExpiryGrace {
		err := s.UpdateDevice(ctx(t), short.UserCode, func(d *flow.Device) (flow.Verdict, error) {
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
	if n, err := Count(ctx(t), s, hitKey); err != nil || n != 1 {
		t.Fatalf("Count before the TTL = %d, %v; want 1", n, err)
	}

	// Past ExpiresAt + grace (and past the login's and counter's time),
	// plus slack: all short-lived things are gone.
	waitUntil(300*time.Millisecond + ExpiryGrace + ExpirySlack + 200*time.Millisecond)

	wantGone(t, s, short.UserCode)
	if l, err := s.TakeLogin(ctx(t), loginKey, ""); !errors.Is(err, flow.ErrNotFound) {
		t.Errorf("TakeLogin after expiry = %+v, %v; want ErrNotFound", l, err)
	}
	if n, err := Count(ctx(t), s, hitKey); err != nil || n != 0 {
		t.Errorf("Count after the TTL = %d, %v; want 0", n, err)
	}
	if n, err := Hit(ctx(t), s, hitKey, time.Hour); err != nil || n != 1 {
		t.Errorf("Hit after the TTL = %d, %v; want 1 (a new window)", n, err)
	}
	// The expired record's user code is free again.
	again := NewDevice(time.Hour)
	again.UserCode = short.UserCode
	mustCreate(t, s, again)
	wantByCode(t, s, again)

	// The long-lived ones are all still there.
	wantRecord(t, s, long)
	if got, err := s.TakeLogin(ctx(t), longLoginKey, ""); err != nil {
		t.Errorf("TakeLogin(long-lived): %v", err)
	} else if d := diffLogin(got, longLogin); d != "" {
		t.Errorf("TakeLogin(long-lived): %s", d)
	}
	if n, err := Count(ctx(t), s, longHitKey); err != nil || n != 1 {
		t.Errorf("Count(long-lived) = %d, %v; want 1", n, err)
	}
}

// Hit adds one to the counter key through Tally and returns its value.
func Hit(ctx context.Context, s flow.Store, key string, ttl time.Duration) (int64, error) {
	return one(s.Tally(ctx, flow.Hit(key, ttl)))
}

// Count reads the counter key through Tally.
func Count(ctx context.Context, s flow.Store, key string) (int64, error) {
	return one(s.Tally(ctx, flow.Read(key)))
}

func one(n []int64, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	if len(n) != 1 {
		return 0, fmt.Errorf("Tally of one step returned %d values", len(n))
	}
	return n[0], nil
}
