package record

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
	"github.com/caddy-device-flow/caddy-device-flow/storage/storetest"
)

// sameDevice compares times as instants and nil byte fields as empty ones.
func sameDevice(t *testing.T, got, want *flow.Device) {
	t.Helper()
	norm := func(d flow.Device) flow.Device {
		for _, tp := range []*time.Time{&d.CreatedAt, &d.ExpiresAt, &d.LastPoll} {
			if !tp.IsZero() {
				*tp = tp.UTC()
			}
		}
		for _, b := range []*[]byte{&d.CodeHash, &d.SealKey, &d.Sealed, &d.MAC} {
			if len(*b) == 0 {
				*b = nil
			}
		}
		if len(d.Networks) == 0 {
			d.Networks = nil
		}
		return d
	}
	if g, w := norm(*got), norm(*want); !reflect.DeepEqual(g, w) {
		t.Errorf("decoded\n%+v\nwant\n%+v", g, w)
	}
}

var codecCases = func() []struct {
	name string
	dev  *flow.Device
} {
	full := storetest.NewDevice(time.Hour)
	full.Status = flow.Approved
	full.LastPoll = time.Now()
	full.Retried = true
	full.Sealed = bytes.Repeat([]byte{7}, 3000)
	full.Reason = "the upstream said: no ✋"
	full.Interval = 15 * time.Second
	opened := storetest.NewDevice(time.Hour)
	opened.Networks = []string{"192.0.2.0/24", "2001:db8:0:100::/56", ""}
	approved := storetest.NewDevice(time.Hour)
	approved.Status, approved.Sealed = flow.Approved, []byte{9}
	approved.Sub, approved.ApprovedFrom = "248289761001", "2001:db8::7"
	polledBefore := storetest.NewDevice(time.Minute)
	polledBefore.LastPoll = polledBefore.CreatedAt.Add(-time.Nanosecond)
	return []struct {
		name string
		dev  *flow.Device
	}{
		{"pending, never polled", storetest.NewDevice(10 * time.Minute)},
		{"every field set", full},
		{"empty", &flow.Device{}},
		{"polled before it was created", polledBefore},
		{"odd interval", &flow.Device{CreatedAt: time.Unix(1, 0), ExpiresAt: time.Unix(2, 0), Interval: 1500*time.Millisecond + 1}},
		{"durations out of the compact range", &flow.Device{CreatedAt: time.Unix(0, 1), ExpiresAt: time.Unix(0, 1).Add(math.MaxInt64), Interval: math.MinInt64}},
		{"far past and far future", &flow.Device{CreatedAt: time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC),
			ExpiresAt: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), LastPoll: time.Unix(-1, 5)}},
		{"denied", &flow.Device{Status: flow.Denied, Reason: "denied by the person", SealKey: []byte{1}}},
		{"opened from networks", opened},
		{"approved, with its subject", approved},
		{"only a subject", &flow.Device{Sub: "x"}},
		{"with a MAC", withMAC(full)},
		{"a MAC and nothing else", &flow.Device{MAC: []byte{9}}},
	}
}()

func withMAC(d *flow.Device) *flow.Device {
	c := *d
	c.MAC = bytes.Repeat([]byte{0xAC}, 16)
	return &c
}

// goldenRecord is a record as the version before MACs wrote it (every
// field set); goldenDevice is what it holds.
const goldenRecord = "01a18580d09de9ceb8fd18c025dabfa4d9e309500274760e6f70656e69642070726f66696c6500093139322e302e322e311030313233343536373839616263646566203031323334353637383961626364656630313233343536373839616263646566067365616c6564"

var goldenDevice = &flow.Device{UserCode: "BCDFGHJK", CodeHash: []byte("0123456789abcdef"), ClientID: "tv", Scope: "openid profile",
	Status: flow.Approved, CreatedAt: time.Unix(1800000000, 5), ExpiresAt: time.Unix(1800000600, 5), Interval: 10 * time.Second,
	LastPoll: time.Unix(1800000042, 0), Retried: true, SealKey: []byte("0123456789abcdef0123456789abcdef"), Sealed: []byte("sealed"), IssuedTo: "192.0.2.1"}

// TestRecordsWithoutMACAreUnchanged: a record without a MAC (no
// server_secret) is stored byte for byte as before MACs were added, so
// either version reads the other's; one with a MAC differs only by its
// flag and the MAC at the end.
func TestRecordsWithoutMACAreUnchanged(t *testing.T) {
	old, _ := hex.DecodeString(goldenRecord)
	got, err := Decode("BCDFGHJK", old)
	if err != nil {
		t.Fatalf("a record of the previous version: %v", err)
	}
	sameDevice(t, got, goldenDevice)
	if b := Encode(goldenDevice); !bytes.Equal(b, old) {
		t.Errorf("a record without a MAC is encoded\n%x\nnot as before\n%x", b, old)
	}
	signed := Encode(withMAC(goldenDevice))
	want := append([]byte{old[0], old[1] | macFlag}, old[2:]...)
	want = append(append(want, 16), bytes.Repeat([]byte{0xAC}, 16)...)
	if !bytes.Equal(signed, want) {
		t.Errorf("with a MAC:\n%x\nwant\n%x", signed, want)
	}
	// The flag with an empty MAC is not canonical.
	if _, err := Decode("X", append(append([]byte{old[0], old[1] | macFlag}, old[2:]...), 0)); err == nil {
		t.Error("decoded a record flagged with an empty MAC")
	}
}

func TestDeviceCodecRoundTrips(t *testing.T) {
	for _, tc := range codecCases {
		t.Run(tc.name, func(t *testing.T) {
			b := Encode(tc.dev)
			got, err := Decode(tc.dev.UserCode, b)
			if err != nil {
				t.Fatal(err)
			}
			sameDevice(t, got, tc.dev)
			if tc.dev.LastPoll.IsZero() != got.LastPoll.IsZero() {
				t.Errorf("LastPoll.IsZero() changed")
			}
			// Canonical: UpdateDevice compares encodings (onlyPollMoved).
			if again := Encode(got); !bytes.Equal(again, b) {
				t.Errorf("encoding what was decoded gave\n%x\nnot\n%x", again, b)
			}
			// Badger reuses its buffers: the record must not alias b.
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
	if b := Encode(d); len(b)*2 > len(j) {
		t.Errorf("binary record is %d bytes, JSON %d: expected less than half", len(b), len(j))
	}
}

// A record written before the fields of the extra section existed (this
// one by that encoder) still reads, with them empty.
func TestDeviceCodecReadsRecordsWithoutExtra(t *testing.T) {
	old, _ := hex.DecodeString("01228080e8ef9eca9cc318c0253828027476066f70656e6964026e6f093139322e302e322e310201020103020405")
	d, err := Decode("BCDFGHJK", old)
	if err != nil {
		t.Fatal(err)
	}
	c := time.Unix(1767225600, 0)
	sameDevice(t, d, &flow.Device{UserCode: "BCDFGHJK", ClientID: "tv", Scope: "openid", Status: flow.Denied, Reason: "no",
		CreatedAt: c, ExpiresAt: c.Add(10 * time.Minute), Interval: 5 * time.Second, LastPoll: c.Add(7 * time.Second),
		IssuedTo: "192.0.2.1", CodeHash: []byte{1, 2}, SealKey: []byte{3}, Sealed: []byte{4, 5}})
	if !bytes.Equal(Encode(d), old) {
		t.Error("a record without extra fields encodes differently than before")
	}
}

// Every truncation or extension of a record, and a few damaged bytes,
// decode to an error.
func TestDeviceCodecRejectsDamage(t *testing.T) {
	for _, tc := range codecCases {
		b := Encode(tc.dev)
		for n := range len(b) {
			if _, err := Decode("X", b[:n]); err == nil {
				t.Errorf("%s: decoded the first %d of %d bytes", tc.name, n, len(b))
			}
		}
		if _, err := Decode("X", append(b, 0)); err == nil {
			t.Errorf("%s: decoded with a byte more", tc.name)
		}
	}
	for _, b := range [][]byte{
		{2, 0},       // another format
		{1, 3},       // status 3
		{1, 0x40},    // wide, with nothing after
		emptyExtra(), // the extra flag with nothing in it: not canonical
	} {
		if _, err := Decode("X", b); err == nil {
			t.Errorf("decoded %x", b)
		}
	}
}

// emptyExtra is a record with the extra flag and an empty extra section.
func emptyExtra() []byte {
	b := append(Encode(&flow.Device{}), 0, 0, 0) // no networks, no sub, no address
	b[1] |= extraFlag
	return b
}

// Decoding any bytes never panics; what decodes encodes to what decodes
// the same.
func FuzzDecodeDevice(f *testing.F) {
	for _, tc := range codecCases {
		f.Add(Encode(tc.dev))
	}
	f.Add([]byte{Format, wideFlag | lastPollFlag})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := Decode("X", b)
		if err != nil {
			return
		}
		again, err := Decode("X", Encode(d))
		if err != nil {
			t.Fatalf("re-encoding %+v: %v", d, err)
		}
		sameDevice(t, again, d)
	})
}

func BenchmarkDeviceCodec(b *testing.B) {
	d := storetest.NewDevice(10 * time.Minute)
	d.LastPoll = time.Now()
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			Encode(d)
		}
	})
	b.Run("decode", func(b *testing.B) {
		enc := Encode(d)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Decode(d.UserCode, enc); err != nil {
				b.Fatal(err)
			}
		}
	})
}
