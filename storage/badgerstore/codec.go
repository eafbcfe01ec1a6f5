package badgerstore

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"time"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// Device records are kept in a compact binary form, not JSON: a record is
// written once per code (and again only when something but the poll time
// changes, see pollclock.go), and read by every poll; with JSON the
// encoding was a fifth of a poll's CPU and the record three times bigger,
// which Badger pays again in memtable flushes, compaction, disk and page
// cache (the memory-mapped tables count in the process's RSS) for every
// live code. Logins, written once and read once, stay JSON.
//
// Version 2 (what encodeDevice writes), in order:
//
//	byte     2 (the version)
//	byte     Status (bits 0–1), and the flags retriedFlag, wideFlag,
//	         lastPollFlag, extraFlag, grantFlag, hashFlag
//	16 bytes with hashFlag only: the hash of the record's ID, a
//	         flow.UserCodeID (the record is keyed by its user code, and
//	         so holds the rest of its ID; see keys.go)
//	times    compact (no wideFlag):
//	           uvarint  CreatedAt as Unix nanoseconds
//	           duration ExpiresAt − CreatedAt
//	           duration LastPoll − CreatedAt, with lastPollFlag only
//	         wide (a time that compact cannot hold, the zero time say):
//	           varint Unix seconds, uvarint nanoseconds, for CreatedAt,
//	           ExpiresAt and (with lastPollFlag) LastPoll
//	duration Interval
//	uvarint  length, then bytes: UserCode, ClientID, Scope, then Reason
//	         with extraFlag only; SealKey, then Sealed with extraFlag only.
//	         With grantFlag, ClientID and Scope are instead one uvarint:
//	         the number of their pair in the store's grant table
//	         (grants.go), which a record can only be read with.
//
// A duration is one uvarint: zigzag(d / unit) << 2 | tag, with the tag
// naming the unit (seconds, milliseconds, nanoseconds; durations are
// mostly whole seconds: 5 s, 10 min), or tag 3 and then a varint of the
// nanoseconds for what does not fit. So a pending code's times take ~12
// bytes (version 1: ~31) and its empty Reason and Sealed none, and every
// time still reads back to the nanosecond.
//
// ID is the record's key and is not repeated (but for a UserCodeID's
// hash, with hashFlag). Version 1 records and JSON
// ones (starting with '{'), written by earlier versions, are still read:
// a store upgraded in place holds them until they expire.
const (
	deviceCodecV1 = 1
	deviceCodecV2 = 2
)

// Flags sharing the Status byte (statuses are 0–2).
const (
	retriedFlag  = 0x80
	wideFlag     = 0x40 // v2: times as seconds and nanoseconds
	lastPollFlag = 0x20 // v2: LastPoll is set
	extraFlag    = 0x10 // v2: Reason and Sealed follow
	grantFlag    = 0x08 // v2: ClientID and Scope are a grant's number
	hashFlag     = 0x04 // v2: the record of a flow.UserCodeID, whose hash follows the flags
	statusMask   = 0x03
)

var errCorruptRecord = errors.New("badgerstore: corrupt device record")

// Bounds of compact v2 records, so that no shift or sum overflows:
// CreatedAt before 2116 (2^62 ns after 1970), offsets and durations within
// ±2^60 units (±36 years in nanoseconds).
const (
	compactCreated = 1 << 62
	compactNanos   = 1 << 60
)

// encodeDevice encodes d with its ClientID and Scope written out.
func encodeDevice(d *flow.Device) []byte { return appendDevice(nil, d, -1) }

// appendDevice appends d's encoding; with grant ≥ 0, as the number of
// d's (ClientID, Scope) pair in the store's grant table.
func appendDevice(b []byte, d *flow.Device, grant int) []byte {
	if b == nil {
		b = make([]byte, 0, 40+len(d.UserCode)+len(d.ClientID)+len(d.Scope)+len(d.Reason)+len(d.SealKey)+len(d.Sealed))
	}
	flags := byte(d.Status) & statusMask
	if d.Retried {
		flags |= retriedFlag
	}
	hasLastPoll := !d.LastPoll.IsZero()
	if hasLastPoll {
		flags |= lastPollFlag
	}
	extra := d.Reason != "" || len(d.Sealed) > 0
	if extra {
		flags |= extraFlag
	}
	created, expiresIn, polledAt, compact := compactTimes(d)
	if !compact {
		flags |= wideFlag
	}
	if grant >= 0 {
		flags |= grantFlag
	}
	uc, hash, byUserCode := flow.SplitUserCodeID(d.ID)
	if byUserCode && uc == d.UserCode {
		flags |= hashFlag
	}
	b = append(b, deviceCodecV2, flags)
	if flags&hashFlag != 0 {
		b = append(b, hash[:]...)
	}
	if compact {
		b = binary.AppendUvarint(b, uint64(created))
		b = appendDuration(b, expiresIn)
		if hasLastPoll {
			b = appendDuration(b, polledAt)
		}
	} else {
		times := []time.Time{d.CreatedAt, d.ExpiresAt}
		if hasLastPoll {
			times = append(times, d.LastPoll)
		}
		for _, t := range times {
			b = binary.AppendVarint(b, t.Unix())
			b = binary.AppendUvarint(b, uint64(t.Nanosecond()))
		}
	}
	b = appendDuration(b, int64(d.Interval))
	b = appendField(b, d.UserCode)
	if grant >= 0 {
		b = binary.AppendUvarint(b, uint64(grant))
	} else {
		b = appendField(appendField(b, d.ClientID), d.Scope)
	}
	if extra {
		b = appendField(b, d.Reason)
	}
	bins := [][]byte{d.SealKey, d.Sealed}
	if !extra {
		bins = bins[:1]
	}
	for _, s := range bins {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

// compactTimes returns CreatedAt in Unix nanoseconds and ExpiresAt and
// LastPoll as offsets from it, or compact false when a time does not fit
// (zero, before 1970, or too far apart).
func compactTimes(d *flow.Device) (created, expiresIn, polledAt int64, compact bool) {
	if d.CreatedAt.IsZero() || d.ExpiresAt.IsZero() || d.CreatedAt.Unix() < 0 || d.CreatedAt.Unix() >= compactCreated/int64(time.Second) {
		return 0, 0, 0, false
	}
	created = d.CreatedAt.UnixNano()
	base := d.CreatedAt.Round(0) // wall clock: Sub would use the monotonic one
	offset := func(t time.Time) (int64, bool) {
		t = t.Round(0)
		delta := t.Sub(base) // saturates, so check it lands back on t
		return int64(delta), delta > -compactNanos && delta < compactNanos && base.Add(delta).Equal(t)
	}
	var ok bool
	if expiresIn, ok = offset(d.ExpiresAt); !ok {
		return 0, 0, 0, false
	}
	if !d.LastPoll.IsZero() {
		if polledAt, ok = offset(d.LastPoll); !ok {
			return 0, 0, 0, false
		}
	}
	return created, expiresIn, polledAt, true
}

// Units of a duration's tag (see the format above).
var durationUnits = [3]int64{int64(time.Second), int64(time.Millisecond), 1}

const durationRaw = 3 // the tag of a duration written as a plain varint

func appendDuration(b []byte, d int64) []byte {
	for tag, unit := range durationUnits {
		if d%unit == 0 {
			if v := d / unit; v > -compactNanos && v < compactNanos {
				return binary.AppendUvarint(b, zigzag(v)<<2|uint64(tag))
			}
			break
		}
	}
	return binary.AppendVarint(binary.AppendUvarint(b, durationRaw), d)
}

func (r *reader) duration() int64 {
	v := r.uvarint()
	tag := v & 3
	if tag == durationRaw {
		if v != durationRaw {
			r.bad = true // non-canonical: a raw duration's prefix is 3 itself
		}
		return r.varint()
	}
	return unzigzag(v>>2) * durationUnits[tag]
}

func zigzag(v int64) uint64   { return uint64(v<<1) ^ uint64(v>>63) }
func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

// decodeDevice reads a record stored under id, of any version, with the
// store's grant table (nil: a record naming a grant is corrupt). b belongs
// to Badger and is only valid during the call: everything kept is copied.
func decodeDevice(id string, b []byte, grants *grantTable) (*flow.Device, error) {
	if len(b) > 0 && b[0] == '{' {
		d := new(flow.Device)
		if err := json.Unmarshal(b, d); err != nil {
			return nil, err
		}
		return d, nil
	}
	if len(b) < 2 {
		return nil, errCorruptRecord
	}
	switch b[0] {
	case deviceCodecV1:
		return decodeDeviceV1(id, b)
	case deviceCodecV2:
		return decodeDeviceV2(id, b, grants)
	}
	return nil, errCorruptRecord
}

func decodeDeviceV2(id string, b []byte, grants *grantTable) (*flow.Device, error) {
	flags := b[1]
	if flags&statusMask > byte(flow.Denied) {
		return nil, errCorruptRecord
	}
	d := &flow.Device{ID: id, Status: flow.Status(flags & statusMask), Retried: flags&retriedFlag != 0}
	r := reader{b: b, off: 2}
	var hash []byte
	if flags&hashFlag != 0 {
		if len(b) < 2+userCodeIDHashLen {
			return nil, errCorruptRecord
		}
		hash, r.off = b[2:2+userCodeIDHashLen], 2+userCodeIDHashLen
	}
	hasLastPoll, extra := flags&lastPollFlag != 0, flags&extraFlag != 0
	if flags&wideFlag == 0 {
		created := r.uvarint()
		if created >= compactCreated {
			r.bad = true
		}
		d.CreatedAt = time.Unix(0, int64(created))
		d.ExpiresAt = d.CreatedAt.Add(time.Duration(r.duration()))
		if hasLastPoll {
			d.LastPoll = d.CreatedAt.Add(time.Duration(r.duration()))
		}
	} else {
		times := []*time.Time{&d.CreatedAt, &d.ExpiresAt}
		if hasLastPoll {
			times = append(times, &d.LastPoll)
		}
		for _, t := range times {
			sec, nsec := r.varint(), r.uvarint()
			if nsec >= uint64(time.Second) {
				r.bad = true
			}
			if sec != zeroUnix || nsec != 0 {
				*t = time.Unix(sec, int64(nsec))
			}
		}
	}
	d.Interval = time.Duration(r.duration())
	nTexts, nBins := 3, 1
	if extra {
		nTexts, nBins = 4, 2
	}
	var texts [4][2]int // UserCode, ClientID, Scope, Reason
	var grant grantPair
	texts[0][0], texts[0][1] = r.field()
	if flags&grantFlag != 0 {
		var ok bool
		if grant, ok = grants.pair(r.uvarint()); !ok {
			r.bad = true
		}
		// ClientID and Scope are not in b: empty here, the grant's below
		texts[1] = [2]int{r.off, r.off}
		texts[2] = texts[1]
	} else {
		texts[1][0], texts[1][1] = r.field()
		texts[2][0], texts[2][1] = r.field()
	}
	if extra {
		texts[3][0], texts[3][1] = r.field()
	}
	var bins [2][2]int
	for i := range nBins {
		bins[i][0], bins[i][1] = r.field()
	}
	if r.bad || r.off != len(b) {
		return nil, errCorruptRecord
	}
	fillFields(d, b, texts[:nTexts], bins[:nBins])
	if flags&grantFlag != 0 {
		d.ClientID, d.Scope = grant.client, grant.scope
	}
	if hash != nil {
		// The record knows its ID: its user code and the hash.
		if d.ID = flow.UserCodeID(d.UserCode, hash); d.UserCode == "" {
			return nil, errCorruptRecord
		}
	}
	return d, nil
}

// fillFields copies the text and byte fields out of b: one string holds
// the text fields and one slice the byte fields (the length prefixes
// between them come along), two allocations per record whatever its size.
func fillFields(d *flow.Device, b []byte, texts, bins [][2]int) {
	if len(texts) > 0 {
		from := texts[0][0]
		all := string(b[from:texts[len(texts)-1][1]])
		for i, p := range []*string{&d.UserCode, &d.ClientID, &d.Scope, &d.Reason}[:len(texts)] {
			*p = all[texts[i][0]-from : texts[i][1]-from]
		}
	}
	if len(bins) > 0 {
		from := bins[0][0]
		raw := append([]byte(nil), b[from:bins[len(bins)-1][1]]...)
		for i, p := range []*[]byte{&d.SealKey, &d.Sealed}[:len(bins)] {
			if start, end := bins[i][0]-from, bins[i][1]-from; end > start {
				*p = raw[start:end:end]
			}
		}
	}
}

// decodeDeviceV1 reads the version 1 format:
//
//	byte     1 (the version)
//	byte     Status, with retriedFlag set when Retried
//	varint   CreatedAt, ExpiresAt, LastPoll: Unix seconds, then
//	uvarint  their nanoseconds (each time is the pair)
//	varint   Interval in nanoseconds
//	uvarint  length, then bytes: UserCode, ClientID, Scope, Reason, SealKey, Sealed
func decodeDeviceV1(id string, b []byte) (*flow.Device, error) {
	if b[1]&^retriedFlag > byte(flow.Denied) {
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
	fillFields(d, b, texts[:], bins[:])
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
