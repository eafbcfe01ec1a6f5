// Package codes makes and reads the two codes of RFC 8628: the user code a
// person types (UserCodeFormat) and the device code a device polls with
// (DeviceCodes).
package codes

import (
	"crypto/rand"
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
