// Package record is the one stored form of a device record (flow.Device),
// shared by both stores: Badger keeps it as a value, Redis as the value of
// the record's key.
package record

import (
	"bytes"
	"encoding/binary"
	"errors"
	"time"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// A device record is stored in a compact binary form: every poll reads
// and decodes it (and on Redis sends it twice, the record it saw and the
// new one), and Badger pays for its size in every memtable, compaction,
// disk block and page of the memory-mapped tables (which count in the
// process's RSS) for as long as the code lives.
//
//	byte      1, the format
//	byte      flags: Status in bits 0–1, retriedFlag, wideFlag, lastPollFlag, macFlag, extraFlag
//	times     compact (no wideFlag):
//	            uvarint   CreatedAt, Unix nanoseconds
//	            duration  ExpiresAt − CreatedAt
//	            duration  LastPoll − CreatedAt, with lastPollFlag only
//	          wide (a time that compact cannot hold: zero, before 1970,
//	          after 2116, or too far from CreatedAt):
//	            varint Unix seconds then uvarint nanoseconds, of
//	            CreatedAt, ExpiresAt and, with lastPollFlag, LastPoll
//	duration  Interval
//	fields    ClientID, Scope, Reason, IssuedTo, CodeHash, SealKey, Sealed: each a
//	          uvarint length and that many bytes
//	extra     with extraFlag only, set when one of them is not empty:
//	            uvarint   the number of Networks, then each as a field
//	            fields    Sub, ApprovedFrom
//	          (records written before these fields existed have no
//	          extraFlag and read back with them empty)
//	MAC       with macFlag only (a server_secret is set): a uvarint length
//	          and that many bytes, never none. A record without it is
//	          byte for byte what versions before it wrote, so each reads
//	          the other's records; an older version takes a record with
//	          it for corrupt.
//
// A duration is one uvarint, zigzag(d / unit) << 2 | tag, the tag naming
// the unit (0 seconds, 1 milliseconds, 2 nanoseconds: most durations are
// whole seconds), or the tag 3 alone followed by a varint of the
// nanoseconds, for what the first form cannot hold. Every time reads back
// to the nanosecond, and the encoding of a record is canonical: encoding
// what was decoded gives the same bytes (Badger's UpdateDevice relies on
// it).
//
// The user code is the record's key in both stores and is not repeated.

// Format is the first byte of every record.
const Format = 1

const (
	statusMask   = 0x03
	retriedFlag  = 0x80
	wideFlag     = 0x40
	lastPollFlag = 0x20
	extraFlag    = 0x08
	macFlag      = 0x10
)

// ErrCorrupt: the bytes are not a record.
var ErrCorrupt = errors.New("record: corrupt device record")

// Bounds of the compact form, so that no shift or sum overflows:
// CreatedAt before 2116 (2^62 ns after 1970), durations within ±2^60
// units.
const (
	compactCreated = 1 << 62
	compactUnits   = 1 << 60
)

// Encode is d in its stored form.
func Encode(d *flow.Device) []byte {
	b := make([]byte, 0, 48+len(d.ClientID)+len(d.Scope)+len(d.Reason)+len(d.IssuedTo)+len(d.CodeHash)+len(d.SealKey)+len(d.Sealed)+len(d.MAC))
	flags := byte(d.Status) & statusMask
	if d.Retried {
		flags |= retriedFlag
	}
	if len(d.MAC) > 0 {
		flags |= macFlag
	}
	polled := !d.LastPoll.IsZero()
	if polled {
		flags |= lastPollFlag
	}
	created, expiresIn, polledAt, compact := compactTimes(d)
	if !compact {
		flags |= wideFlag
	}
	extra := hasExtra(d)
	if extra {
		flags |= extraFlag
	}
	b = append(b, Format, flags)
	if compact {
		b = binary.AppendUvarint(b, uint64(created))
		b = appendDuration(b, expiresIn)
		if polled {
			b = appendDuration(b, polledAt)
		}
	} else {
		times := []time.Time{d.CreatedAt, d.ExpiresAt, d.LastPoll}
		if !polled {
			times = times[:2]
		}
		for _, t := range times {
			b = binary.AppendVarint(b, t.Unix())
			b = binary.AppendUvarint(b, uint64(t.Nanosecond()))
		}
	}
	b = appendDuration(b, int64(d.Interval))
	for _, s := range [...]string{d.ClientID, d.Scope, d.Reason, d.IssuedTo} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	for _, s := range [...][]byte{d.CodeHash, d.SealKey, d.Sealed} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	if extra {
		b = binary.AppendUvarint(b, uint64(len(d.Networks)))
		for _, s := range append(d.Networks[:len(d.Networks):len(d.Networks)], d.Sub, d.ApprovedFrom) {
			b = binary.AppendUvarint(b, uint64(len(s)))
			b = append(b, s...)
		}
	}
	if len(d.MAC) > 0 {
		b = binary.AppendUvarint(b, uint64(len(d.MAC)))
		b = append(b, d.MAC...)
	}
	return b
}

// hasExtra reports whether d has a field of the extra section.
func hasExtra(d *flow.Device) bool {
	return len(d.Networks) > 0 || d.Sub != "" || d.ApprovedFrom != ""
}

// compactTimes returns CreatedAt in Unix nanoseconds and ExpiresAt and
// LastPoll as offsets from it; compact is false when one does not fit.
func compactTimes(d *flow.Device) (created, expiresIn, polledAt int64, compact bool) {
	if d.CreatedAt.IsZero() || d.CreatedAt.Unix() < 0 || d.CreatedAt.Unix() >= compactCreated/int64(time.Second) || d.ExpiresAt.IsZero() {
		return 0, 0, 0, false
	}
	base := d.CreatedAt.Round(0) // the wall clock: Sub would use the monotonic one
	offset := func(t time.Time) (int64, bool) {
		t = t.Round(0)
		delta := t.Sub(base) // saturates: check that it lands back on t
		return int64(delta), delta > -compactUnits && delta < compactUnits && base.Add(delta).Equal(t)
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
	return base.UnixNano(), expiresIn, polledAt, true
}

// durationUnits are the units of a duration's tags 0–2.
var durationUnits = [3]int64{int64(time.Second), int64(time.Millisecond), 1}

const durationRaw = 3 // the tag of a duration written as a varint of nanoseconds

func appendDuration(b []byte, d int64) []byte {
	for tag, unit := range durationUnits {
		if d%unit == 0 {
			if v := d / unit; v > -compactUnits && v < compactUnits {
				return binary.AppendUvarint(b, zigzag(v)<<2|uint64(tag))
			}
			break
		}
	}
	return binary.AppendVarint(binary.AppendUvarint(b, durationRaw), d)
}

func zigzag(v int64) uint64   { return uint64(v<<1) ^ uint64(v>>63) }
func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

// zeroUnix is time.Time{}.Unix(): the zero time reads back as zero.
var zeroUnix = time.Time{}.Unix()

// Decode reads the record stored under userCode. Everything it
// returns is copied out of b, which may be Badger's.
func Decode(userCode string, b []byte) (*flow.Device, error) {
	if len(b) < 2 || b[0] != Format || b[1]&statusMask > byte(flow.Denied) {
		return nil, ErrCorrupt
	}
	flags := b[1]
	d := &flow.Device{UserCode: userCode, Status: flow.Status(flags & statusMask), Retried: flags&retriedFlag != 0}
	r := reader{b: b, off: 2}
	polled := flags&lastPollFlag != 0
	if flags&wideFlag == 0 {
		created := r.uvarint()
		if created >= compactCreated {
			r.bad = true
		}
		d.CreatedAt = time.Unix(0, int64(created))
		d.ExpiresAt = d.CreatedAt.Add(time.Duration(r.duration()))
		if polled {
			d.LastPoll = d.CreatedAt.Add(time.Duration(r.duration()))
		}
	} else {
		times := []*time.Time{&d.CreatedAt, &d.ExpiresAt, &d.LastPoll}
		if !polled {
			times = times[:2]
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
	var f [8][2]int // where each field's bytes are in b; the MAC last
	for i := range 7 {
		f[i] = r.field()
	}
	if flags&extraFlag != 0 {
		readExtra(&r, d)
		if !hasExtra(d) {
			r.bad = true // not canonical: the flag goes with a field
		}
	}
	if flags&macFlag != 0 {
		if f[7] = r.field(); f[7][0] == f[7][1] {
			r.bad = true // not canonical: no MAC is no flag
		}
	}
	if r.bad || r.off != len(b) {
		return nil, ErrCorrupt
	}
	// One string for the four texts and one slice for the three byte
	// fields: two allocations, whatever the record holds.
	texts := string(b[f[0][0]:f[3][1]])
	for i, p := range [...]*string{&d.ClientID, &d.Scope, &d.Reason, &d.IssuedTo} {
		*p = texts[f[i][0]-f[0][0] : f[i][1]-f[0][0]]
	}
	raw := bytes.Clone(b[f[4][0]:f[6][1]])
	for i, p := range [...]*[]byte{&d.CodeHash, &d.SealKey, &d.Sealed} {
		if start, end := f[4+i][0]-f[4][0], f[4+i][1]-f[4][0]; end > start {
			*p = raw[start:end:end]
		}
	}
	if flags&macFlag != 0 {
		// After the extra section, so cloned on its own.
		d.MAC = bytes.Clone(b[f[7][0]:f[7][1]])
	}
	return d, nil
}

// readExtra reads the extra section into d.
func readExtra(r *reader, d *flow.Device) {
	n := r.uvarint()
	if n > uint64(len(r.b)-r.off) { // every network takes a byte at least
		r.bad = true
		return
	}
	text := func() string {
		f := r.field()
		return string(r.b[f[0]:f[1]])
	}
	if n > 0 {
		d.Networks = make([]string, n)
		for i := range d.Networks {
			d.Networks[i] = text()
		}
	}
	d.Sub = text()
	d.ApprovedFrom = text()
}

// reader walks an encoded record; running off its end sets bad instead of
// panicking, so that a damaged record is an error, never a crash.
type reader struct {
	b   []byte
	off int
	bad bool
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b[r.off:])
	return int64(r.advance(uint64(v), n))
}

func (r *reader) uvarint() uint64 { return r.advance(binary.Uvarint(r.b[r.off:])) }

// advance moves past a varint of n bytes (n <= 0: none could be read).
func (r *reader) advance(v uint64, n int) uint64 {
	if n <= 0 {
		r.bad, r.off = true, len(r.b)
		return 0
	}
	r.off += n
	return v
}

func (r *reader) duration() int64 {
	v := r.uvarint()
	tag := v & 3
	if tag == durationRaw {
		if v != durationRaw {
			r.bad = true // not canonical
		}
		return r.varint()
	}
	return unzigzag(v>>2) * durationUnits[tag]
}

// field reads a length and returns where that many bytes are.
func (r *reader) field() [2]int {
	n := r.uvarint()
	if r.bad || n > uint64(len(r.b)-r.off) {
		r.bad, r.off = true, len(r.b)
		return [2]int{r.off, r.off}
	}
	start := r.off
	r.off += int(n)
	return [2]int{start, r.off}
}
