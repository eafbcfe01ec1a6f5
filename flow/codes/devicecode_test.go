package codes

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

func TestDeviceCodeRoundTrip(t *testing.T) {
	c := NewDeviceCodes([]byte("server secret"))
	seen := map[string]bool{}
	for range 1000 {
		uc := Base20.New()
		code, hash := c.New(uc)
		if seen[code] || len(code) > MaxLen || strings.ContainsAny(code, "+/=.") {
			t.Fatalf("device code %q: repeated, too long or not URL-safe", code)
		}
		seen[code] = true
		if !bytes.Equal(hash, Hash(code)) || len(hash) != 16 {
			t.Fatalf("hash %x is not Hash(code)", hash)
		}
		got, ok := c.Parse(code)
		if !ok || got != uc {
			t.Fatalf("Parse(%q) = %q, %v; want %q", code, got, ok, uc)
		}
	}
	long := strings.Repeat("9", MaxUserCodeLen)
	if code, _ := c.New(long); len(code) != MaxLen {
		t.Fatalf("a code for the longest user code has %d characters, MaxLen is %d", len(code), MaxLen)
	}
}

// Every change to a real code, and every code forged without the key, is
// refused by Parse (which the token endpoint calls before the store).
func TestForgedDeviceCodesAreRefused(t *testing.T) {
	c := NewDeviceCodes([]byte("server secret"))
	uc := Base20.New()
	code, _ := c.New(uc)
	raw, _ := base64.RawURLEncoding.DecodeString(code)

	// Every single bit flipped.
	for i := range len(raw) * 8 {
		flipped := bytes.Clone(raw)
		flipped[i/8] ^= 1 << (i % 8)
		if got, ok := c.Parse(base64.RawURLEncoding.EncodeToString(flipped)); ok {
			t.Fatalf("bit %d flipped: accepted as %q", i, got)
		}
	}
	// Forged from the known user code: right shape, any random part and
	// tag but the right ones.
	for i := range 10000 {
		forged := append([]byte(uc), make([]byte, randomLen+tagLen)...)
		forged[len(uc)] = byte(i)
		forged[len(uc)+1] = byte(i >> 8)
		if _, ok := c.Parse(base64.RawURLEncoding.EncodeToString(forged)); ok {
			t.Fatalf("forged code %d accepted", i)
		}
	}
	// The same body with another user code, and with the tag of another
	// code spliced in.
	other, _ := c.New(Base20.New())
	otherRaw, _ := base64.RawURLEncoding.DecodeString(other)
	spliced := append(bytes.Clone(raw[:len(raw)-tagLen]), otherRaw[len(otherRaw)-tagLen:]...)
	if _, ok := c.Parse(base64.RawURLEncoding.EncodeToString(spliced)); ok {
		t.Fatal("a tag spliced from another code was accepted")
	}
	// Made under another secret (another handler).
	if _, ok := NewDeviceCodes([]byte("another secret")).Parse(code); ok {
		t.Fatal("a code made under another secret was accepted")
	}
	for _, junk := range []string{"", "a", code + "A", code[:len(code)-1], "!" + code[1:], strings.Repeat("A", MaxLen+1), code + "=="} {
		if _, ok := c.Parse(junk); ok {
			t.Fatalf("%q accepted", junk)
		}
	}
}

func FuzzParseDeviceCode(f *testing.F) {
	c := NewDeviceCodes([]byte("server secret"))
	code, _ := c.New("BCDFGHJK")
	f.Add(code)
	f.Add("")
	f.Add(strings.Repeat("A", 60))
	f.Fuzz(func(t *testing.T, s string) {
		uc, ok := c.Parse(s)
		if ok && (s != code || uc != "BCDFGHJK") {
			t.Fatalf("Parse(%q) accepted as %q", s, uc)
		}
	})
}

func BenchmarkDeviceCodesNew(b *testing.B) {
	c := NewDeviceCodes([]byte("server secret"))
	for b.Loop() {
		c.New("BCDFGHJK")
	}
}

func BenchmarkDeviceCodesParse(b *testing.B) {
	c := NewDeviceCodes([]byte("server secret"))
	code, _ := c.New("BCDFGHJK")
	for b.Loop() {
		c.Parse(code)
	}
}
