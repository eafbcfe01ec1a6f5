package badgerstore

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
	"github.com/caddy-device-flow/caddy-device-flow/storage/storetest"
)

func sameDevice(t *testing.T, got, want *flow.Device) {
	t.Helper()
	norm := func(d flow.Device) flow.Device {
		// Times compare as instants; nil and empty byte fields are alike.
		for _, tp := range []*time.Time{&d.CreatedAt, &d.ExpiresAt, &d.LastPoll} {
			if tp.IsZero() {
				*tp = time.Time{}
			} else {
				*tp = tp.UTC()
			}
		}
		if len(d.SealKey) == 0 {
			d.SealKey = nil
		}
		if len(d.Sealed) == 0 {
			d.Sealed = nil
		}
		return d
	}
	if g, w := norm(*got), norm(*want); !reflect.DeepEqual(g, w) {
		t.Errorf("decoded\n%+v\nwant\n%+v", g, w)
	}
}

func TestDeviceCodecRoundTrips(t *testing.T) {
	full := storetest.NewDevice(time.Hour)
	full.Status = flow.Approved
	full.LastPoll = time.Now()
	full.Sealed = bytes.Repeat([]byte{7}, 3000)
	full.Reason = "the upstream said: no ✋"
	full.Interval = 15 * time.Second
	full.Retried = true

	tests := []struct {
		name string
		dev  *flow.Device
	}{
		{"pending, never polled", storetest.NewDevice(10 * time.Minute)},
		{"every field set", full},
		{"empty", &flow.Device{ID: "x"}},
		{"far future and far past", &flow.Device{ID: "y", CreatedAt: time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC),
			ExpiresAt: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)}},
		{"denied", &flow.Device{ID: "z", Status: flow.Denied, Reason: "denied by the person", SealKey: []byte{1}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := encodeDevice(tc.dev)
			got, err := decodeDevice(tc.dev.ID, b, nil)
			if err != nil {
				t.Fatal(err)
			}
			sameDevice(t, got, tc.dev)
			if !tc.dev.LastPoll.IsZero() == got.LastPoll.IsZero() {
				t.Errorf("LastPoll.IsZero() changed")
			}
			// Badger reuses the buffer: the record must not alias it.
			for i := range b {
				b[i] = 0xFF
			}
			sameDevice(t, got, tc.dev)
		})
	}
}

func TestDeviceCodecIsCompact(t *testing.T) {
	d := storetest.NewDevice(10 * time.Minute)
	j, _ := json.Marshal(d)
	if b := encodeDevice(d); len(b)*2 > len(j) {
		t.Errorf("binary record is %d bytes, JSON %d: expected less than half", len(b), len(j))
	}
}

// encodeDeviceV1 is the version 1 encoder, as earlier versions wrote
// records; they are still read.
func encodeDeviceV1(d *flow.Device) []byte {
	b := []byte{deviceCodecV1, byte(d.Status)}
	if d.Retried {
		b[1] |= retriedFlag
	}
	for _, t := range [...]time.Time{d.CreatedAt, d.ExpiresAt, d.LastPoll} {
		b = binary.AppendVarint(b, t.Unix())
		b = binary.AppendUvarint(b, uint64(t.Nanosecond()))
	}
	b = binary.AppendVarint(b, int64(d.Interval))
	for _, s := range [...]string{d.UserCode, d.ClientID, d.Scope, d.Reason} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	for _, s := range [...][]byte{d.SealKey, d.Sealed} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

// Records written in version 1 by earlier versions are still read.
func TestDeviceCodecReadsV1(t *testing.T) {
	full := storetest.NewDevice(time.Hour)
	full.Status, full.LastPoll, full.Retried = flow.Approved, time.Now(), true
	full.Sealed, full.Reason = []byte("sealed"), "why"
	for _, d := range []*flow.Device{storetest.NewDevice(time.Hour), full, {ID: "x"}} {
		got, err := decodeDevice(d.ID, encodeDeviceV1(d), nil)
		if err != nil {
			t.Fatal(err)
		}
		sameDevice(t, got, d)
	}
}

// The compact form of version 2 is what a live code costs on disk: a
// pending code with a seal key, as most live codes are, takes at least
// 20 bytes less than in version 1, and its times take the compact form.
//
// A record keyed by its user code (a flow.UserCodeID) holds the 16 bytes
// of its ID's hash besides, and no other entry (keys.go).
func TestDeviceCodecV2IsSmallerThanV1(t *testing.T) {
	d := storetest.NewDevice(10 * time.Minute)
	byUserCode := encodeDevice(d)
	d.ID = flow.DeviceID(flow.NewDeviceCode()) // keyed by the ID, as v1 records were
	v1, v2 := encodeDeviceV1(d), encodeDevice(d)
	if len(v1)-len(v2) < 20 {
		t.Errorf("v2 record is %d bytes, v1 %d: want 20 less at least", len(v2), len(v1))
	}
	if len(byUserCode) != len(v2)+userCodeIDHashLen {
		t.Errorf("a record keyed by its user code is %d bytes, one keyed by its ID %d: want the hash's 16 more", len(byUserCode), len(v2))
	}
	if v2[1]&wideFlag != 0 {
		t.Errorf("a record of today took the wide form")
	}
	polled := *d
	polled.LastPoll = d.CreatedAt.Add(1234567 * time.Microsecond)
	if got := len(encodeDevice(&polled)) - len(v2); got > 6 {
		t.Errorf("LastPoll costs %d bytes, want at most 6", got)
	}
}

// Durations take the largest unit that holds them exactly, and any
// int64 round-trips.
func TestDurationEncoding(t *testing.T) {
	tests := []struct {
		d       int64
		maxSize int
	}{
		{0, 1}, {int64(5 * time.Second), 1}, {int64(10 * time.Minute), 2}, {-int64(time.Second), 1},
		{int64(1500 * time.Millisecond), 2}, {int64(time.Second + 1), 6},
		{math.MaxInt64, 11}, {math.MinInt64, 11}, {compactNanos, 11}, {-compactNanos + 1, 10},
	}
	for _, tc := range tests {
		b := appendDuration(nil, tc.d)
		r := reader{b: b}
		if got := r.duration(); got != tc.d || r.bad || r.off != len(b) {
			t.Errorf("duration %d read back as %d (bad %v, %d of %d bytes)", tc.d, got, r.bad, r.off, len(b))
		}
		if len(b) > tc.maxSize {
			t.Errorf("duration %d takes %d bytes, want at most %d", tc.d, len(b), tc.maxSize)
		}
	}
}

// Records written as JSON by earlier versions are still read.
func TestDeviceCodecReadsJSON(t *testing.T) {
	d := storetest.NewDevice(time.Hour)
	d.LastPoll = time.Now()
	j, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeDevice(d.ID, j, nil)
	if err != nil {
		t.Fatal(err)
	}
	sameDevice(t, got, d)
}

// A damaged record is an error, never a panic or a half-read record.
func TestDeviceCodecRefusesDamage(t *testing.T) {
	d := storetest.NewDevice(time.Hour)
	d.Sealed = []byte("sealed")
	b := encodeDevice(d)
	for n := range len(b) {
		if got, err := decodeDevice(d.ID, b[:n], nil); err == nil {
			t.Errorf("record cut to %d of %d bytes decoded: %+v", n, len(b), got)
		}
	}
	if _, err := decodeDevice(d.ID, append(bytes.Clone(b), 0), nil); err == nil {
		t.Error("record with a trailing byte decoded")
	}
	bad := bytes.Clone(b)
	bad[0] = 99
	if _, err := decodeDevice(d.ID, bad, nil); err == nil {
		t.Error("record of an unknown version decoded")
	}
	bad = bytes.Clone(b)
	bad[1] = byte(flow.Denied) + 1
	if _, err := decodeDevice(d.ID, bad, nil); err == nil {
		t.Error("record with an unknown status decoded")
	}
}

func FuzzDecodeDevice(f *testing.F) {
	f.Add(encodeDevice(storetest.NewDevice(time.Hour)))
	f.Add(encodeDeviceV1(storetest.NewDevice(time.Hour)))
	f.Add([]byte{deviceCodecV1, 0, 0x80})
	f.Add([]byte{deviceCodecV2, lastPollFlag | extraFlag, 0x80})
	f.Add(appendDevice(nil, storetest.NewDevice(time.Hour), 0))
	grants := emptyGrants()
	grants.snap.Load().pairs = []grantPair{{"tv", "openid profile"}}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := decodeDevice("id", b, grants)
		if err != nil || b[0] == '{' {
			return
		}
		// What decodes must survive another round trip unchanged.
		again, err := decodeDevice("id", encodeDevice(d), nil)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		sameDevice(t, again, d)
	})
}

// Every field of flow.Device must survive the binary codec: a field added
// to flow.Device and forgotten here would silently read back as zero.
// Each field is set to a non-zero value by reflection, so this fails for
// a new field until codec.go learns it.
func TestDeviceCodecKeepsEveryField(t *testing.T) {
	var d flow.Device
	v := reflect.ValueOf(&d).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch {
		case f.Type() == reflect.TypeOf(time.Time{}):
			f.Set(reflect.ValueOf(time.Unix(1_700_000_000+int64(i), int64(i))))
		case f.Kind() == reflect.String:
			f.SetString("v" + strconv.Itoa(i))
		case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.Uint8:
			f.SetBytes([]byte{byte(i), 1})
		case f.Kind() == reflect.Bool:
			f.SetBool(true)
		case f.CanInt():
			f.SetInt(1) // Status 1 is Approved; Interval 1ns
		case f.CanUint():
			f.SetUint(1)
		default:
			t.Fatalf("flow.Device.%s has a kind (%s) this test cannot fill: teach it, and codec.go", v.Type().Field(i).Name, f.Kind())
		}
	}
	got, err := decodeDevice(d.ID, encodeDevice(&d), nil)
	if err != nil {
		t.Fatal(err)
	}
	sameDevice(t, got, &d)
}
