package flow

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"strings"
)

// Device codes carry their user code, masked under a server key:
//
//	base64url(r) "." base64url(userCode XOR HMAC-SHA256(maskKey, r))
//
// with r 24 random bytes (192 bits: RFC 6749 §10.10 asks for 160) and
// maskKey derived from the server secret. The store can then keep a code
// as one entry, its record, found by the user code both from the
// verification page and, once unmasked, from the device's poll: there is
// no second entry from user code to device to write, compact and hold in
// memory (a quarter of the bytes Badger wrote per code, and of the
// memory of a million live codes).
//
// The record's ID (UserCodeID) is the user code and 128 bits of the
// code's SHA-256; the store answers only to the whole ID, so a poll must
// hold the code itself, as before. The mask is what keeps the token
// endpoint from telling whether a user code is live: without the key, a
// forged code unmasks to a user code its forger cannot choose or know
// (and mostly to bytes that are no user code at all, refused here), so
// answering it faster or slower when that user code is live gives nothing
// away. A person's user code, shown on the device, tells nothing about
// the device code: r is secret.
//
// Codes of earlier versions (43 or 44 base64url characters, no ".") are
// read as before: DeviceID, and the two-entry layout their stores used.
type DeviceCodes struct {
	// The mask key XORed with HMAC's inner and outer pads: every poll
	// unmasks, so the HMAC is computed on the stack (mask), without the
	// allocations and state copies of crypto/hmac (~1 µs of a poll).
	ipad, opad [sha256.BlockSize]byte
}

const (
	deviceCodeRandom = 24
	deviceCodeSep    = "."
	// maxUserCodeLen bounds the masked part: no user code format is
	// longer.
	maxUserCodeLen = 32
)

// NewDeviceCodes makes and reads device codes under the server secret
// (ServerSecret in the store).
func NewDeviceCodes(secret []byte) DeviceCodes {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("device-code-mask-v1"))
	var c DeviceCodes
	copy(c.ipad[:], m.Sum(nil)) // a 32-byte key, zero-padded to the block (RFC 2104)
	c.opad = c.ipad
	for i := range c.ipad {
		c.ipad[i] ^= 0x36
		c.opad[i] ^= 0x5c
	}
	return c
}

// New returns a new device code for the normalized user code, and the ID
// of the record that goes with it.
func (c DeviceCodes) New(userCode string) (code, id string) {
	var r [deviceCodeRandom]byte
	rand.Read(r[:])
	return c.NewFrom(r, userCode)
}

// NewFrom is New with the random part given: for tools that must make the
// same code again (bench/livecodes).
func (c DeviceCodes) NewFrom(r [deviceCodeRandom]byte, userCode string) (code, id string) {
	var masked [maxUserCodeLen]byte
	n := copy(masked[:], userCode)
	c.mask(&r, masked[:n])
	code = base64.RawURLEncoding.EncodeToString(r[:]) + deviceCodeSep + base64.RawURLEncoding.EncodeToString(masked[:n])
	return code, userCodeID(userCode, codeHash(code))
}

// ID is the ID of the record a device code names; false when the code
// cannot name one (not one of ours: the caller answers invalid_grant).
// Codes of earlier versions name theirs by DeviceID.
func (c DeviceCodes) ID(code string) (string, bool) {
	rPart, mPart, ours := strings.Cut(code, deviceCodeSep)
	if !ours {
		return DeviceID(code), true
	}
	var r [deviceCodeRandom]byte
	var userCode [maxUserCodeLen]byte
	if base64.RawURLEncoding.EncodedLen(len(r)) != len(rPart) || len(mPart) == 0 ||
		base64.RawURLEncoding.DecodedLen(len(mPart)) > len(userCode) {
		return "", false
	}
	// Decoded from stack copies: []byte(s) would allocate.
	var src [64]byte
	if n, err := base64.RawURLEncoding.Strict().Decode(r[:], src[:copy(src[:], rPart)]); err != nil || n != len(r) {
		return "", false
	}
	n, err := base64.RawURLEncoding.Strict().Decode(userCode[:], src[:copy(src[:], mPart)])
	if err != nil || n == 0 {
		return "", false
	}
	c.mask(&r, userCode[:n])
	if !isUserCode(userCode[:n]) {
		return "", false // not made here
	}
	return userCodeID(userCode[:n], codeHash(code)), true
}

// isUserCode: what a normalized user code can be, upper-case letters and
// digits (UserCodeFormat), at most maxUserCodeLen of them.
func isUserCode[T string | []byte](b T) bool {
	if len(b) == 0 || len(b) > maxUserCodeLen {
		return false
	}
	for i := range len(b) {
		if c := b[i]; !('A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// mask XORs b (at most 32 bytes) in place with HMAC-SHA256(maskKey, r),
// computed as RFC 2104 defines it from the precomputed pads (the tests
// check it against crypto/hmac).
func (c DeviceCodes) mask(r *[deviceCodeRandom]byte, b []byte) {
	var inner [sha256.BlockSize + deviceCodeRandom]byte
	copy(inner[:], c.ipad[:])
	copy(inner[sha256.BlockSize:], r[:])
	innerSum := sha256.Sum256(inner[:])
	var outer [sha256.BlockSize + sha256.Size]byte
	copy(outer[:], c.opad[:])
	copy(outer[sha256.BlockSize:], innerSum[:])
	stream := sha256.Sum256(outer[:])
	subtle.XORBytes(b, b, stream[:len(b)])
}

// codeHash is the 128 bits of a device code's SHA-256 that its ID holds.
func codeHash(code string) [16]byte {
	h := sha256.Sum256([]byte(code))
	return [16]byte(h[:16])
}

// userCodeID is UserCodeID in one allocation.
func userCodeID[T string | []byte](userCode T, hash [16]byte) string {
	var b [maxUserCodeLen + 1 + 22]byte
	n := copy(b[:], userCode)
	b[n] = deviceCodeSep[0]
	base64.RawURLEncoding.Encode(b[n+1:], hash[:])
	return string(b[:n+1+22])
}

// UserCodeID is the ID of the record of a device code made by
// DeviceCodes: the normalized user code, ".", and the base64url of the
// code's hash. Stores may key the record by the user code alone
// (SplitUserCodeID) as long as they answer only to the whole ID.
func UserCodeID(userCode string, hash []byte) string {
	if len(hash) != 16 || len(userCode) > maxUserCodeLen {
		return userCode + deviceCodeSep + base64.RawURLEncoding.EncodeToString(hash)
	}
	return userCodeID(userCode, [16]byte(hash))
}

// SplitUserCodeID takes a UserCodeID apart: the user code and the raw
// hash; false for an ID of another shape (DeviceID's, say).
func SplitUserCodeID(id string) (userCode string, hash [16]byte, ok bool) {
	userCode, encoded, ok := strings.Cut(id, deviceCodeSep)
	if !ok || !isUserCode(userCode) || len(encoded) != base64.RawURLEncoding.EncodedLen(len(hash)) {
		return "", hash, false
	}
	var src [22]byte // decoded from a stack copy: []byte(s) would allocate
	if n, err := base64.RawURLEncoding.Strict().Decode(hash[:], src[:copy(src[:], encoded)]); err != nil || n != len(hash) {
		return "", hash, false
	}
	return userCode, hash, true
}
