package codes

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
)

// A device code names its authorization's user code and proves that this
// server made it:
//
//	base64url( userCode ‖ r ‖ tag )
//
// r is 20 random bytes (160 bits, RFC 6749 §10.10's SHOULD) and tag is the
// first 16 bytes of HMAC-SHA256(key, userCode ‖ r), key being derived from
// the handler's server secret. A code is checked (Parse) before anything
// is read from the store: a forged or altered code fails the tag, in
// constant time, and costs one HMAC. A code made under another handler's
// secret fails the same way.
//
// The user code inside is what the device already shows on its screen, so
// it gives nothing away; it lets the store keep one record per
// authorization, under its user code, for both the person's page and the
// device's polls. The record holds the code's Hash, so a code whose user
// code has since been given to another authorization is not that one's.

const (
	randomLen = 20
	tagLen    = 16
	// MaxUserCodeLen bounds the user code a device code may carry; no
	// UserCodeFormat is longer.
	MaxUserCodeLen = 32
	// MaxLen is the longest device code Parse accepts, in characters.
	MaxLen = ((MaxUserCodeLen+randomLen+tagLen)*8 + 5) / 6
)

// DeviceCodes makes and checks device codes under one server secret.
type DeviceCodes struct {
	key []byte
}

// NewDeviceCodes derives the tag key from the server secret.
func NewDeviceCodes(secret []byte) DeviceCodes {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("caddy-device-flow device code"))
	return DeviceCodes{key: m.Sum(nil)}
}

// New returns a new device code for the normalized user code, and its
// Hash for the record.
func (c DeviceCodes) New(userCode string) (code string, hash []byte) {
	raw := make([]byte, 0, len(userCode)+randomLen+tagLen)
	raw = append(raw, userCode...)
	raw = append(raw, make([]byte, randomLen)...)
	rand.Read(raw[len(userCode):])
	raw = append(raw, c.tag(raw)...)
	code = base64.RawURLEncoding.EncodeToString(raw)
	return code, Hash(code)
}

// Parse checks that this server made the device code and returns the user
// code it carries; ok is false for anything else (the caller answers
// invalid_grant without reading the store).
func (c DeviceCodes) Parse(code string) (userCode string, ok bool) {
	if len(code) > MaxLen {
		return "", false
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(code)
	n := len(raw) - randomLen - tagLen
	if err != nil || n < 1 || n > MaxUserCodeLen {
		return "", false
	}
	body, tag := raw[:len(raw)-tagLen], raw[len(raw)-tagLen:]
	if !hmac.Equal(tag, c.tag(body)) || !isUserCode(raw[:n]) {
		return "", false
	}
	return string(raw[:n]), true
}

func (c DeviceCodes) tag(body []byte) []byte {
	m := hmac.New(sha256.New, c.key)
	m.Write(body)
	return m.Sum(nil)[:tagLen]
}

// Hash is what a record keeps of its device code: 128 bits of its
// SHA-256, so a copy of the store holds no usable code.
func Hash(code string) []byte {
	h := sha256.Sum256([]byte(code))
	return h[:16]
}

// isUserCode: what a normalized user code can be, upper-case letters and
// digits, as every UserCodeFormat's alphabet is.
func isUserCode(b []byte) bool {
	for _, c := range b {
		if !('A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}
