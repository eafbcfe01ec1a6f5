package badgerstore

import (
	"encoding/base64"
	"errors"

	"github.com/dgraph-io/badger/v4"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// Key spaces. Every entry costs its key (plus Badger's ~30 bytes of
// framing) in the memtable, in every table it is compacted through, on
// disk and in the page cache of the memory-mapped tables, so a live code
// is one entry: the device codes the flow makes carry their user code
// (flow.DeviceCodes), and the record of such a code (its ID is a
// flow.UserCodeID: the user code and 16 bytes of the code's hash) is kept
// under 'V' and the user code, the hash in the record (codec.go). The
// verification page finds it by the user code, a poll by the user code
// its device code unmasks to; both answer only to the whole ID.
//
// Device codes of the previous version (their IDs are flow.DeviceID
// values) were two entries, their record and their user code's, and a
// store upgraded in place holds such records until they expire. Their IDs,
// which are almost always flow.DeviceID values (base64url of a 16-byte
// hash, 22 characters; 32 bytes, 43 characters, for device codes of
// earlier versions), are stored as their raw bytes: the record's key is
// 'D' and those bytes. A user code's entry names its device by the
// first 8 of them only (idPrefixLen): DeviceByUserCode, which a person's
// code entry calls once, finds the record among those whose key starts so
// (one, but for a 2^-64 chance) by its user code, while every live code
// saves 24 bytes.
//
// The store's contract treats IDs as opaque strings, so an ID of another
// shape is kept as it is, under "d:" (and, as a user code's value, after
// a 0xFF marker; see idValue). Device IDs never contain the device code,
// only its hash.
//
// Earlier versions kept records under "d/" + ID and user codes under
// "u/" + code (with the ID as text); a store upgraded in place holds such
// records until they expire, so while any is left (Store.legacy) lookups
// fall back to them, and they are updated and deleted where they are.
const (
	userCodeRecordPrefix = 'V'  // + the user code of a flow.UserCodeID: its record
	deviceKeyPrefix      = 'D'  // + the 16 (or 32) bytes of a flow.DeviceID
	deviceTextPrefix     = "d:" // + an ID of another shape
	userCodeKeyPrefix    = 'U'  // + the user code; the value is idRef(ID)
	grantKeyPrefix       = 'G'  // + a grant's number, 4 bytes (grants.go)
	legacyDevicePrefix   = "d/" // + ID (earlier versions)
	legacyUserCodePrefix = "u/" // + user code, value: the ID (earlier versions)
	loginPrefix          = "l/"
	counterPrefix        = "c/"
	secretPrefix         = "s/"
)

// rawIDLen and shortRawIDLen are the lengths of a flow.DeviceID's hash
// (earlier versions' and today's); idPrefixLen is how much of it a user
// code's entry keeps.
const (
	rawIDLen      = 32
	shortRawIDLen = 16
	idPrefixLen   = 8
)

// textIDMarker starts a user code's value that holds an ID as text: IDs
// are printable, so it is never part of one, and padding with a second
// one keeps the value from being idPrefixLen long.
const textIDMarker = 0xFF

var idEncoding = base64.RawURLEncoding.Strict()

// rawID decodes a flow.DeviceID-shaped id and returns its raw bytes (a
// slice of dst); false for any other id (only canonical base64url of
// exactly 16 or 32 bytes qualifies, so that every raw form maps back to
// the one id).
func rawID(dst *[rawIDLen]byte, id string) ([]byte, bool) {
	if len(id) != idEncoding.EncodedLen(rawIDLen) && len(id) != idEncoding.EncodedLen(shortRawIDLen) {
		return nil, false
	}
	n, err := idEncoding.Decode(dst[:], []byte(id))
	return dst[:n], err == nil && (n == rawIDLen || n == shortRawIDLen)
}

// isRawIDKey reports whether key is a record's key made of a raw ID.
func isRawIDKey(key []byte) bool {
	return len(key) > 0 && key[0] == deviceKeyPrefix && (len(key) == 1+rawIDLen || len(key) == 1+shortRawIDLen)
}

// userCodeIDHashLen is the length of a flow.UserCodeID's hash.
const userCodeIDHashLen = 16

// deviceKey is the key of the record with the given ID.
func deviceKey(id string) []byte {
	if userCode, _, ok := flow.SplitUserCodeID(id); ok {
		return userCodeRecordKey(userCode)
	}
	var buf [rawIDLen]byte
	if raw, ok := rawID(&buf, id); ok {
		return append(append(make([]byte, 0, 1+len(raw)), deviceKeyPrefix), raw...)
	}
	return []byte(deviceTextPrefix + id)
}

func userCodeRecordKey(code string) []byte {
	return append(append(make([]byte, 0, 1+len(code)), userCodeRecordPrefix), code...)
}

func userCodeKey(code string) []byte {
	return append(append(make([]byte, 0, 1+len(code)), userCodeKeyPrefix), code...)
}

// idRef is how a user code's entry names its device: the first
// idPrefixLen bytes of the raw ID, or the marker and the ID as text
// (never idPrefixLen long).
func idRef(id string) []byte {
	var buf [rawIDLen]byte
	if raw, ok := rawID(&buf, id); ok {
		return raw[:idPrefixLen:idPrefixLen]
	}
	b := make([]byte, 0, 2+len(id))
	b = append(b, textIDMarker)
	if len(id)+1 == idPrefixLen {
		b = append(b, textIDMarker)
	}
	return append(b, id...)
}

var errCorruptIndex = errors.New("badgerstore: corrupt user code entry")

// parseIDRef reverses idRef: the ID, or the prefix of its raw form.
func parseIDRef(b []byte) (id string, prefix []byte, err error) {
	if len(b) == idPrefixLen {
		return "", b, nil
	}
	if len(b) < 2 || b[0] != textIDMarker {
		return "", nil, errCorruptIndex
	}
	b = b[1:]
	if b[0] == textIDMarker {
		b = b[1:]
	}
	return string(b), nil, nil
}

// hasPrefix reports whether the database holds a live key under any of
// the prefixes.
func hasPrefix(db *badger.DB, prefixes ...string) (bool, error) {
	found := false
	err := db.View(func(txn *badger.Txn) error {
		for _, p := range prefixes {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(p)})
			it.Rewind()
			found = found || it.Valid()
			it.Close()
		}
		return nil
	})
	return found, err
}
