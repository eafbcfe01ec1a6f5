package flow

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"strings"
)

// UserCodeFormat says how user codes look: which characters, how many, and
// where the dashes go when shown.
type UserCodeFormat struct {
	Alphabet string
	Length   int
	Group    int // characters between dashes when shown
}

var (
	// Base20 is RFC 8628 §6.1's example: no vowels (no words), no
	// look-alikes, 20^8 ≈ 2.56e10 codes, shown as XXXX-XXXX.
	Base20 = UserCodeFormat{Alphabet: "BCDFGHJKLMNPQRSTVWXZ", Length: 8, Group: 4}
	// Digits suits numeric keypads: 10^9 codes, shown as XXX-XXX-XXX.
	Digits = UserCodeFormat{Alphabet: "0123456789", Length: 9, Group: 3}
)

// Space is the number of distinct codes of the format.
func (f UserCodeFormat) Space() float64 {
	s := 1.0
	for range f.Length {
		s *= float64(len(f.Alphabet))
	}
	return s
}

// New draws a normalized user code. Each character is drawn by rejection
// sampling so every character is equally likely (no modulo bias).
func (f UserCodeFormat) New() string {
	return f.draw(rand.Reader)
}

// draw makes a code from the random bytes of src.
func (f UserCodeFormat) draw(src io.Reader) string {
	n := len(f.Alphabet)
	limit := 256 - 256%n // bytes at or above limit would favour the first characters
	out := make([]byte, 0, f.Length)
	var buf [32]byte
	for len(out) < f.Length {
		io.ReadFull(src, buf[:]) // crypto/rand never fails (it panics rather than return an error)
		for _, b := range buf {
			if int(b) < limit {
				out = append(out, f.Alphabet[int(b)%n])
				if len(out) == f.Length {
					break
				}
			}
		}
	}
	return string(out)
}

// Normalize turns what a person typed into the stored form: upper case,
// separators (dashes, spaces, dots, anything not in the alphabet's range of
// letters and digits) dropped. It returns "" when the result cannot be a
// code of this format, so lookups of junk never reach the store.
func (f UserCodeFormat) Normalize(typed string) string {
	if len(typed) > 64 {
		return ""
	}
	out := make([]byte, 0, f.Length)
	for i := 0; i < len(typed); i++ {
		c := typed[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		isAlnum := ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9')
		if !isAlnum {
			continue // a separator of any kind
		}
		if strings.IndexByte(f.Alphabet, c) < 0 || len(out) == f.Length {
			return ""
		}
		out = append(out, c)
	}
	if len(out) != f.Length {
		return ""
	}
	return string(out)
}

// Display puts the dashes back: BCDFGHJK → BCDF-GHJK.
func (f UserCodeFormat) Display(code string) string {
	if f.Group <= 0 {
		return code
	}
	var b strings.Builder
	for i := 0; i < len(code); i++ {
		if i > 0 && i%f.Group == 0 {
			b.WriteByte('-')
		}
		b.WriteByte(code[i])
	}
	return b.String()
}

// NewDeviceCode draws 264 random bits, URL-safe: a device code as the
// previous version made them (44 characters, one more than the 43 of the
// versions before, so that DeviceID tells the two apart). Codes are now
// made by DeviceCodes (devicecode.go); these are still read, and tests
// use them where any code will do.
func NewDeviceCode() string {
	var b [33]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// legacyDeviceCodeLen is the length of the device codes of earlier
// versions (256 bits, base64url), whose IDs are the whole hash.
const legacyDeviceCodeLen = 43

// DeviceID is the ID of a device code of earlier versions (DeviceCodes
// makes today's, see UserCodeID): its SHA-256, cut to 128
// bits. A copy of the store therefore holds no usable device code, and
// finding a device code for a given ID is a second preimage of 128 bits.
// The cut keeps every live code's key in the store 16 bytes shorter (the
// Badger store holds a million live codes in its memory-mapped tables).
// A code of earlier versions keeps its whole hash, the ID it was stored
// under.
func DeviceID(deviceCode string) string {
	h := sha256.Sum256([]byte(deviceCode))
	if len(deviceCode) == legacyDeviceCodeLen {
		return base64.RawURLEncoding.EncodeToString(h[:])
	}
	return base64.RawURLEncoding.EncodeToString(h[:16])
}

// randomToken is a URL-safe random string of n bytes of entropy.
func randomToken(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
