package badgerstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
	"github.com/caddy-device-flow/caddy-device-flow/storage/storetest"
)

// A flow.DeviceID is kept as its 32 raw bytes; any other ID as text, and
// every ID comes back from a user code's entry as it went in.
func TestIDEncodings(t *testing.T) {
	deviceID := flow.DeviceID("some device code")
	legacyID := flow.DeviceID(strings.Repeat("L", 43)) // a device code of earlier versions
	// The same characters but with non-zero padding bits: base64url
	// that decodes (leniently) to the same bytes must not share the key.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, deviceID[len(deviceID)-1])
	nonCanonical := deviceID[:len(deviceID)-1] + alphabet[last|1:last|1+1]
	tests := []struct {
		name string
		id   string
		raw  bool
	}{
		{"device ID", deviceID, true},
		{"device ID of an earlier version's code", legacyID, true},
		{"short", "x", false},
		{"7 characters", strings.Repeat("c", 7), false},
		{"31 characters", strings.Repeat("a", 31), false},
		{"32 characters", strings.Repeat("b", 32), false},
		{"43 characters, not base64url", strings.Repeat("!", 43), false},
		{"non-canonical base64url", nonCanonical, false},
	}
	keys := map[string]string{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key := deviceKey(tc.id)
			if raw := isRawIDKey(key); raw != tc.raw {
				t.Errorf("deviceKey(%q) = %q: raw %v, want %v", tc.id, key, raw, tc.raw)
			}
			if other, ok := keys[string(key)]; ok {
				t.Errorf("IDs %q and %q share the key %q", tc.id, other, key)
			}
			keys[string(key)] = tc.id
			v := idRef(tc.id)
			id, prefix, err := parseIDRef(v)
			switch {
			case err != nil:
				t.Errorf("parseIDRef(idRef(%q)): %v", tc.id, err)
			case tc.raw && !bytes.Equal(prefix, key[1:1+idPrefixLen]):
				t.Errorf("idRef(%q) = %x, want the raw ID's first %d bytes", tc.id, v, idPrefixLen)
			case !tc.raw && id != tc.id:
				t.Errorf("parseIDRef(idRef(%q)) = %q", tc.id, id)
			}
		})
	}
	for _, bad := range [][]byte{nil, {textIDMarker}, []byte("no marker")} {
		if id, _, err := parseIDRef(bad); err == nil {
			t.Errorf("parseIDRef(%q) = %q, want an error", bad, id)
		}
	}
}

// A user code's entry keeps only the first bytes of its device's ID:
// devices whose IDs share them are told apart by their user codes.
func TestUserCodeFindsItsDeviceAmongIDsWithTheSamePrefix(t *testing.T) {
	s := open(t, Options{InMemory: true})
	ctx := context.Background()
	var devs []*flow.Device
	for i := range 5 {
		raw := bytes.Repeat([]byte{0x42}, rawIDLen) // the same first 8 bytes
		raw[rawIDLen-1] = byte(i)
		d := storetest.NewDevice(time.Hour)
		d.ID = idEncoding.EncodeToString(raw)
		if err := s.CreateDevice(ctx, d); err != nil {
			t.Fatal(err)
		}
		devs = append(devs, d)
	}
	for _, d := range devs {
		got, err := s.DeviceByUserCode(ctx, d.UserCode)
		if err != nil || got.ID != d.ID || got.UserCode != d.UserCode {
			t.Errorf("DeviceByUserCode(%s) = %+v, %v; want %s", d.UserCode, got, err, d.ID)
		}
	}
	mustUpdate(t, s, devs[2].ID, func(*flow.Device) (flow.Verdict, error) { return flow.Delete, nil })
	if got, err := s.DeviceByUserCode(ctx, devs[2].UserCode); !errors.Is(err, flow.ErrNotFound) {
		t.Errorf("a deleted device's user code finds %+v, %v", got, err)
	}
}

// A store upgraded in place holds records of the earlier versions (under
// "d/" and "u/", as JSON or codec v1) until they expire: they are found by
// ID and by user code, polled, saved, deleted, and their user codes stay
// taken. Once none is left, lookups stop falling back to them.
func TestRecordsOfEarlierVersions(t *testing.T) {
	encodings := []struct {
		name   string
		encode func(*flow.Device) []byte
	}{
		{"json", func(d *flow.Device) []byte { b, _ := json.Marshal(d); return b }},
		{"v1", encodeDeviceV1},
	}
	for _, enc := range encodings {
		t.Run(enc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(Options{Dir: dir, GCInterval: -1})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			old := []*flow.Device{storetest.NewDevice(time.Hour), storetest.NewDevice(time.Hour), storetest.NewDevice(time.Hour)}
			err = s.db.Update(func(txn *badger.Txn) error {
				for _, d := range old {
					if err := txn.Set([]byte(legacyDevicePrefix+d.ID), enc.encode(d)); err != nil {
						return err
					}
					if err := txn.Set([]byte(legacyUserCodePrefix+d.UserCode), []byte(d.ID)); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			s = open(t, Options{Dir: dir, GCInterval: -1})
			if !s.legacy.Load() {
				t.Fatal("the store did not notice the records of an earlier version")
			}

			got, err := s.DeviceByUserCode(ctx, old[0].UserCode)
			if err != nil || got.ID != old[0].ID {
				t.Fatalf("DeviceByUserCode = %+v, %v", got, err)
			}
			taken := storetest.NewDevice(time.Hour)
			storetest.SetUserCode(taken, old[0].UserCode)
			if err := s.CreateDevice(ctx, taken); !errors.Is(err, flow.ErrUserCodeTaken) {
				t.Fatalf("CreateDevice with an old record's user code: %v", err)
			}
			polled := time.Now().Add(time.Second)
			mustUpdate(t, s, old[0].ID, poll(polled, false))
			mustUpdate(t, s, old[0].ID, func(d *flow.Device) (flow.Verdict, error) {
				if !d.LastPoll.Equal(polled) {
					t.Errorf("LastPoll %v, want %v", d.LastPoll, polled)
				}
				d.Status, d.Sealed = flow.Approved, []byte("tokens")
				return flow.Save, nil
			})
			if got := inBadger(t, s, old[0].ID); got == nil || got.Status != flow.Approved {
				t.Fatalf("the approved old record reads back as %+v", got)
			}
			for _, d := range old {
				mustUpdate(t, s, d.ID, func(*flow.Device) (flow.Verdict, error) { return flow.Delete, nil })
				if _, err := s.DeviceByUserCode(ctx, d.UserCode); !errors.Is(err, flow.ErrNotFound) {
					t.Fatalf("after Delete, DeviceByUserCode: %v", err)
				}
			}
			if err := s.CreateDevice(ctx, taken); err != nil {
				t.Fatalf("the deleted old record's user code is still taken: %v", err)
			}
			s.sweep(time.Now())
			if s.legacy.Load() {
				t.Error("with no old record left, lookups still fall back to the old keys")
			}
		})
	}
}

// liveKeys lists the store's keys of codes, grants aside.
func liveKeys(t *testing.T, s *Store) []string {
	t.Helper()
	var keys []string
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if k := it.Item().Key(); k[0] != grantKeyPrefix {
				keys = append(keys, string(k))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// A code of today (its ID a flow.UserCodeID) is one entry, its record
// under its user code; the record answers only to its whole ID, and its
// user code is taken for codes of either shape while it lives.
func TestOneEntryPerCode(t *testing.T) {
	ctx := context.Background()
	s := open(t, Options{InMemory: true})
	d := storetest.NewDevice(time.Hour)
	if err := s.CreateDevice(ctx, d); err != nil {
		t.Fatal(err)
	}
	if keys := liveKeys(t, s); len(keys) != 1 || keys[0] != string(userCodeRecordKey(d.UserCode)) {
		t.Fatalf("a code is stored as %q, want its record under its user code alone", keys)
	}
	got, err := s.DeviceByUserCode(ctx, d.UserCode)
	if err != nil || got.ID != d.ID {
		t.Fatalf("DeviceByUserCode = %+v, %v; want ID %s", got, err, d.ID)
	}

	// Another code that names the same user code, with another hash.
	uc, hash, _ := flow.SplitUserCodeID(d.ID)
	hash[0] ^= 1
	impostor := flow.UserCodeID(uc, hash[:])
	for range 2 { // the first read fills the poll clock's entry for d.ID, if any
		mustUpdate(t, s, impostor, func(rec *flow.Device) (flow.Verdict, error) {
			if rec != nil {
				t.Errorf("ID %s was given %s's record", impostor, d.ID)
			}
			return flow.Delete, nil
		})
	}
	if inBadger(t, s, d.ID) == nil {
		t.Fatalf("an update under another ID deleted the record")
	}

	other := storetest.NewDevice(time.Hour)
	storetest.SetUserCode(other, d.UserCode)
	if err := s.CreateDevice(ctx, other); !errors.Is(err, flow.ErrUserCodeTaken) {
		t.Errorf("CreateDevice with a live user code: %v, want ErrUserCodeTaken", err)
	}
	earlier := storetest.NewDevice(time.Hour)
	earlier.ID = flow.DeviceID(flow.NewDeviceCode())
	earlier.UserCode = d.UserCode
	if err := s.CreateDevice(ctx, earlier); !errors.Is(err, flow.ErrUserCodeTaken) {
		t.Errorf("CreateDevice of an earlier code's record with a live user code: %v, want ErrUserCodeTaken", err)
	}

	mustUpdate(t, s, d.ID, func(*flow.Device) (flow.Verdict, error) { return flow.Delete, nil })
	if keys := liveKeys(t, s); len(keys) != 0 {
		t.Fatalf("after Delete the store holds %q", keys)
	}
	if err := s.CreateDevice(ctx, earlier); err != nil {
		t.Errorf("the user code is not free after Delete: %v", err)
	}
}

// A record whose ID names another user code than its own is refused: it
// would be stored where its user code cannot find it.
func TestIDMustNameTheUserCode(t *testing.T) {
	s := open(t, Options{InMemory: true})
	d := storetest.NewDevice(time.Hour)
	d.UserCode = flow.Base20.New()
	if err := s.CreateDevice(context.Background(), d); err == nil || errors.Is(err, flow.ErrUserCodeTaken) {
		t.Fatalf("CreateDevice = %v, want an error", err)
	}
	if keys := liveKeys(t, s); len(keys) != 0 {
		t.Fatalf("the store holds %q", keys)
	}
}
