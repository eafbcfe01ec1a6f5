package badgerstore

import (
	"bytes"
	"encoding/json"
	"reflect"
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
			got, err := decodeDevice(tc.dev.ID, b)
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

// Records written as JSON by earlier versions are still read.
func TestDeviceCodecReadsJSON(t *testing.T) {
	d := storetest.NewDevice(time.Hour)
	d.LastPoll = time.Now()
	j, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeDevice(d.ID, j)
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
		if got, err := decodeDevice(d.ID, b[:n]); err == nil {
			t.Errorf("record cut to %d of %d bytes decoded: %+v", n, len(b), got)
		}
	}
	if _, err := decodeDevice(d.ID, append(bytes.Clone(b), 0)); err == nil {
		t.Error("record with a trailing byte decoded")
	}
	bad := bytes.Clone(b)
	bad[0] = 99
	if _, err := decodeDevice(d.ID, bad); err == nil {
		t.Error("record of an unknown version decoded")
	}
	bad = bytes.Clone(b)
	bad[1] = byte(flow.Denied) + 1
	if _, err := decodeDevice(d.ID, bad); err == nil {
		t.Error("record with an unknown status decoded")
	}
}

func FuzzDecodeDevice(f *testing.F) {
	f.Add(encodeDevice(storetest.NewDevice(time.Hour)))
	f.Add([]byte{deviceCodecV1, 0, 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := decodeDevice("id", b)
		if err != nil || b[0] == '{' {
			return
		}
		// What decodes must survive another round trip unchanged.
		again, err := decodeDevice("id", encodeDevice(d))
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		sameDevice(t, again, d)
	})
}
