package badgerstore

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"time"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// Device records are kept in a compact binary form, not JSON: every poll
// of a pending code reads its record and writes it back (LastPoll), and
// with JSON the encoding was a fifth of a poll's CPU and the record three
// times bigger (~300 bytes against ~110), which Badger pays again in
// memtable flushes, compaction, disk and page cache for every live code.
// Logins, written once and read once, stay JSON.
//
// Version 1, in order:
//
//	byte     1 (the version)
//	byte     Status, with retriedFlag set when Retried
//	varint   CreatedAt, ExpiresAt, LastPoll: Unix seconds, then
//	uvarint  their nanoseconds (each time is the pair)
//	varint   Interval in nanoseconds
//	uvarint  length, then bytes: UserCode, ClientID, Scope, Reason, SealKey, Sealed
//
// ID is the record's key and is not repeated. Records that an earlier
// version stored as JSON start with '{' and are still read.
const deviceCodecV1 = 1

// retriedFlag shares the Status byte (statuses are 0–2).
const retriedFlag = 0x80

var errCorruptRecord = errors.New("badgerstore: corrupt device record")

func encodeDevice(d *flow.Device) []byte {
	b := make([]byte, 0, 64+len(d.UserCode)+len(d.ClientID)+len(d.Scope)+len(d.Reason)+len(d.SealKey)+len(d.Sealed))
	status := byte(d.Status)
	if d.Retried {
		status |= retriedFlag
	}
	b = append(b, deviceCodecV1, status)
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

// decodeDevice reads a record stored under id. b belongs to Badger and is
// only valid during the call: everything kept is copied.
func decodeDevice(id string, b []byte) (*flow.Device, error) {
	if len(b) > 0 && b[0] == '{' {
		d := new(flow.Device)
		if err := json.Unmarshal(b, d); err != nil {
			return nil, err
		}
		return d, nil
	}
	if len(b) < 2 || b[0] != deviceCodecV1 || b[1]&^retriedFlag > byte(flow.Denied) {
		return nil, errCorruptRecord
	}
	d := &flow.Device{ID: id, Status: flow.Status(b[1] &^ retriedFlag), Retried: b[1]&retriedFlag != 0}
	r := reader{b: b, off: 2}
	for _, t := range [...]*time.Time{&d.CreatedAt, &d.ExpiresAt, &d.LastPoll} {
		sec, nsec := r.varint(), r.uvarint()
		if nsec >= uint64(time.Second) {
			r.bad = true
		}
		if sec != zeroUnix || nsec != 0 {
			*t = time.Unix(sec, int64(nsec))
		}
	}
	d.Interval = time.Duration(r.varint())
	var texts [4][2]int
	for i := range texts {
		texts[i][0], texts[i][1] = r.field()
	}
	var bins [2][2]int
	for i := range bins {
		bins[i][0], bins[i][1] = r.field()
	}
	if r.bad || r.off != len(b) {
		return nil, errCorruptRecord
	}
	// One string holds the text fields and one slice the byte fields (the
	// length prefixes between them come along): two allocations per
	// record, whatever its size.
	from := texts[0][0]
	all := string(b[from:texts[3][1]])
	for i, p := range [...]*string{&d.UserCode, &d.ClientID, &d.Scope, &d.Reason} {
		*p = all[texts[i][0]-from : texts[i][1]-from]
	}
	from = bins[0][0]
	raw := append([]byte(nil), b[from:bins[1][1]]...)
	for i, p := range [...]*[]byte{&d.SealKey, &d.Sealed} {
		if start, end := bins[i][0]-from, bins[i][1]-from; end > start {
			*p = raw[start:end:end]
		}
	}
	return d, nil
}

// zeroUnix is time.Time{}.Unix(): the zero time round-trips as zero.
var zeroUnix = time.Time{}.Unix()

// reader walks an encoded record; an overrun sets bad instead of
// panicking, so a damaged record is an error, never a crash.
type reader struct {
	b   []byte
	off int // the next byte to read
	bad bool
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b[r.off:])
	if n <= 0 {
		r.bad, r.off = true, len(r.b)
		return 0
	}
	r.off += n
	return v
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		r.bad, r.off = true, len(r.b)
		return 0
	}
	r.off += n
	return v
}

// field reads a length-prefixed field and returns where its bytes are.
func (r *reader) field() (start, end int) {
	n := r.uvarint()
	if r.bad || n > uint64(len(r.b)-r.off) {
		r.bad, r.off = true, len(r.b)
		return r.off, r.off
	}
	start = r.off
	r.off += int(n)
	return start, r.off
}
