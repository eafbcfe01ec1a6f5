package flow

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Without a configured server secret, whoever can write to the store can
// also read the secret kept there, and nothing in a record can be trusted
// more than the store: swapping a record's SealKey for a key of one's own
// makes the callback seal the tokens to it. With Config.ServerSecret, which
// the store never holds, every device record and login carries a MAC under
// a key derived from it, bound to the record's key (the user code, the
// login key), so a record written or altered by anyone else, or moved to
// another key, is taken for absent (see docs/security.md for what still
// holds: replays of a record's own earlier versions, deletion, counters).
//
// The MAC covers every field but the poll bookkeeping (LastPoll, Retried,
// Interval), which a pending poll changes: the poll path only checks it,
// and the Badger store can keep those fields in memory without rewriting
// the record.

// MinServerSecret is the shortest Config.ServerSecret accepted, in bytes.
const MinServerSecret = 32

// deriveKey derives a 32-byte key for one purpose from the server secret.
func deriveKey(serverSecret []byte, purpose string) []byte {
	key, err := hkdf.Key(sha256.New, serverSecret, nil, "caddy-device-flow "+purpose, 32)
	if err != nil {
		panic(err) // only for lengths HKDF-SHA256 cannot give; 32 it can
	}
	return key
}

const macSize = 16 // bytes of HMAC-SHA256 kept: 128 bits

// recordMACs makes and checks record MACs under one key.
type recordMACs struct{ pool sync.Pool }

func newRecordMACs(key []byte) *recordMACs {
	m := &recordMACs{}
	m.pool.New = func() any { return &macState{h: hmac.New(sha256.New, key)} }
	return m
}

// macState is an HMAC and buffers for the bytes it covers and its sum,
// reused: checking a MAC, which every poll does, allocates nothing.
type macState struct {
	h        hash.Hash
	buf, out []byte
}

// sum is the MAC of what write appends; when check is not nil, it is
// compared with check instead (nil for a mismatch, check for a match).
func (m *recordMACs) sum(check []byte, write func([]byte) []byte) []byte {
	st := m.pool.Get().(*macState)
	defer m.pool.Put(st)
	st.buf = write(st.buf[:0])
	st.h.Reset()
	st.h.Write(st.buf)
	st.out = st.h.Sum(st.out[:0])
	if check == nil {
		return bytes.Clone(st.out[:macSize])
	}
	if len(check) == macSize && hmac.Equal(check, st.out[:macSize]) {
		return check
	}
	return nil
}

func appendField(b, f []byte) []byte {
	return append(binary.AppendUvarint(b, uint64(len(f))), f...)
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendTime(b []byte, t time.Time) []byte {
	return binary.AppendUvarint(binary.AppendVarint(b, t.Unix()), uint64(t.Nanosecond()))
}

// device is the MAC of a device record under its user code (see sum for
// check).
func (m *recordMACs) device(d *Device, check []byte) []byte {
	return m.sum(check, func(b []byte) []byte {
		b = append(b, "device v1\x00"...)
		b = appendString(b, d.UserCode)
		b = appendField(b, d.CodeHash)
		b = appendString(b, d.ClientID)
		b = appendString(b, d.Scope)
		b = append(b, byte(d.Status))
		b = appendTime(b, d.CreatedAt)
		b = appendTime(b, d.ExpiresAt)
		b = appendField(b, d.SealKey)
		b = appendField(b, d.Sealed)
		b = appendString(b, d.Reason)
		b = appendString(b, d.IssuedTo)
		b = binary.AppendUvarint(b, uint64(len(d.Networks)))
		for _, n := range d.Networks {
			b = appendString(b, n)
		}
		b = appendString(b, d.Sub)
		return appendString(b, d.ApprovedFrom)
	})
}

// login is the MAC of a login stored under key (see sum for check).
func (m *recordMACs) login(key string, l *Login, check []byte) []byte {
	return m.sum(check, func(b []byte) []byte {
		b = append(b, "login v1\x00"...)
		b = appendString(b, key)
		b = appendString(b, l.UserCode)
		b = appendField(b, l.CodeHash)
		b = appendString(b, l.State)
		b = appendString(b, l.Verifier)
		b = appendString(b, l.Browser)
		return appendTime(b, l.ExpiresAt)
	})
}

// sameMACFields reports whether a and b agree on every field the device
// MAC covers, so that a Save that moved only poll fields keeps its MAC.
func sameMACFields(a, b *Device) bool {
	return a.UserCode == b.UserCode && bytes.Equal(a.CodeHash, b.CodeHash) && a.ClientID == b.ClientID &&
		a.Scope == b.Scope && a.Status == b.Status && a.CreatedAt.Equal(b.CreatedAt) && a.ExpiresAt.Equal(b.ExpiresAt) &&
		bytes.Equal(a.SealKey, b.SealKey) &&
		bytes.Equal(a.Sealed, b.Sealed) && a.Reason == b.Reason && a.IssuedTo == b.IssuedTo &&
		slices.Equal(a.Networks, b.Networks) && a.Sub == b.Sub && a.ApprovedFrom == b.ApprovedFrom
}

// authenticatedStore signs what it writes and checks what it reads. A
// record that fails the check is reported (forged) and taken for absent:
// it is never handed to the flow, so it delivers no tokens and receives
// none.
type authenticatedStore struct {
	Store
	macs   *recordMACs
	forged func(kind string, unsigned bool)
}

func (a authenticatedStore) genuine(d *Device) bool {
	if len(d.MAC) == 0 || a.macs.device(d, d.MAC) == nil {
		a.forged("device", len(d.MAC) == 0)
		return false
	}
	return true
}

func (a authenticatedStore) CreateDevice(ctx context.Context, d *Device) error {
	d.MAC = a.macs.device(d, nil)
	return a.Store.CreateDevice(ctx, d)
}

func (a authenticatedStore) DeviceByUserCode(ctx context.Context, userCode string) (*Device, error) {
	d, err := a.Store.DeviceByUserCode(ctx, userCode)
	if err == nil && !a.genuine(d) {
		return nil, ErrNotFound
	}
	return d, err
}

func (a authenticatedStore) UpdateDevice(ctx context.Context, userCode string, fn func(*Device) (Verdict, error)) error {
	return a.Store.UpdateDevice(ctx, userCode, func(d *Device) (Verdict, error) {
		if d == nil {
			return fn(nil)
		}
		if !a.genuine(d) {
			_, err := fn(nil)
			return Keep, err // left as it is: the flow saw nothing
		}
		before := *d
		verdict, err := fn(d)
		if verdict == Save && !sameMACFields(d, &before) {
			d.MAC = a.macs.device(d, nil)
		}
		return verdict, err
	})
}

func (a authenticatedStore) Devices(ctx context.Context, cursor string, limit int) (DevicePage, error) {
	p, err := a.Store.Devices(ctx, cursor, limit)
	p.Devices = slices.DeleteFunc(p.Devices, func(d *Device) bool { return !a.genuine(d) })
	return p, err
}

func (a authenticatedStore) PutLogin(ctx context.Context, key string, login *Login) error {
	login.MAC = a.macs.login(key, login, nil)
	return a.Store.PutLogin(ctx, key, login)
}

func (a authenticatedStore) TakeLogin(ctx context.Context, key, state string) (*Login, error) {
	l, err := a.Store.TakeLogin(ctx, key, state)
	if err == nil && (len(l.MAC) == 0 || a.macs.login(key, l, l.MAC) == nil) {
		a.forged("login", len(l.MAC) == 0)
		return nil, ErrNotFound
	}
	return l, err
}

// Secret is never asked for with a configured server secret; refusing it
// keeps it so.
func (a authenticatedStore) Secret(context.Context, string, func() ([]byte, error)) ([]byte, error) {
	return nil, errors.New("the server secret comes from the configuration, not the store")
}

// recordForged reports a record that failed its MAC: counted, and logged
// at error level (at most a line per 10 s), with nothing of its content.
func (s *Service) recordForged(kind string, unsigned bool) {
	s.cfg.Observer.Event(EventRecordForged)
	why := "its MAC does not match: written or changed by someone without the server secret"
	if unsigned {
		why = "it has no MAC: written before server_secret was set, or by someone without it"
	}
	s.warnings.error(s.log, "device flow store holds a "+kind+" record that is not genuine; taken for absent",
		zap.String("why", why))
}
