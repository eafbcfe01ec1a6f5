package flow

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
)

var testCodes = NewDeviceCodes([]byte("a server secret of the tests"))

// A new code names its record: ID gives back the ID New gave, made of the
// user code and the code's hash; the code is ~44 characters.
func TestDeviceCodeRoundTrip(t *testing.T) {
	for _, format := range []UserCodeFormat{Base20, Digits} {
		userCode := format.New()
		code, id := testCodes.New(userCode)
		got, ok := testCodes.ID(code)
		if !ok || got != id {
			t.Fatalf("ID(%q) = %q, %v; want %q", code, got, ok, id)
		}
		uc, hash, ok := SplitUserCodeID(id)
		if !ok || uc != userCode || hash != codeHash(code) {
			t.Fatalf("SplitUserCodeID(%q) = %q, %x, %v", id, uc, hash, ok)
		}
		if strings.Contains(code, userCode) || len(code) > 46 {
			t.Errorf("code %q (%d characters) for user code %q", code, len(code), userCode)
		}
		if again, _ := testCodes.New(userCode); again == code {
			t.Errorf("two codes for one user code are the same")
		}
	}
}

// What was not made by New under this secret names no record it did not
// name: a code from another secret, a code changed in any character, and
// codes of no shape at all.
func TestDeviceCodeRefusesOthers(t *testing.T) {
	code, id := testCodes.New(Base20.New())
	other, _ := NewDeviceCodes([]byte("another secret")).New(Base20.New())
	tests := map[string]string{
		"another secret's": other,
		"empty":            "",
		"separator only":   ".",
		"no random part":   "." + code[strings.Index(code, ".")+1:],
		"no user code":     code[:strings.Index(code, ".")+1],
		"short random":     code[1:],
		"padding":          code + "=",
		"not base64":       strings.Replace(code, code[:2], "!!", 1),
		"too long":         code[:strings.Index(code, ".")+1] + base64.RawURLEncoding.EncodeToString(make([]byte, 40)),
	}
	for i := range code {
		changed := []byte(code)
		if changed[i] == 'A' {
			changed[i] = 'B'
		} else {
			changed[i] = 'A'
		}
		tests[fmt.Sprintf("changed at %d", i)] = string(changed)
	}
	for name, c := range tests {
		if got, ok := testCodes.ID(c); ok && got == id {
			t.Errorf("%s: %q names the record of %q", name, c, code)
		}
	}
}

// A forged code mostly unmasks to no user code at all (and is refused
// before the store is asked); what it unmasks to otherwise its forger
// cannot choose.
func TestForgedDeviceCodesAreMostlyRefused(t *testing.T) {
	accepted := 0
	for range 10000 {
		var b [24 + 8]byte
		rand.Read(b[:])
		forged := base64.RawURLEncoding.EncodeToString(b[:24]) + "." + base64.RawURLEncoding.EncodeToString(b[24:])
		if _, ok := testCodes.ID(forged); ok {
			accepted++
		}
	}
	if accepted > 20 { // (36/256)^8: ~0.0000015% expected
		t.Errorf("%d of 10000 forged codes unmask to a user code", accepted)
	}
}

// Codes of earlier versions keep the IDs they were stored under.
func TestEarlierDeviceCodesKeepTheirIDs(t *testing.T) {
	for _, c := range []string{NewDeviceCode(), NewDeviceCode()[1:]} {
		if id, ok := testCodes.ID(c); !ok || id != DeviceID(c) {
			t.Errorf("ID(%q) = %q, %v; want DeviceID's %q", c, id, ok, DeviceID(c))
		}
	}
}

// SplitUserCodeID takes only what UserCodeID makes.
func TestSplitUserCodeID(t *testing.T) {
	hash := make([]byte, 16)
	good := UserCodeID("BCDFGHJK", hash)
	for _, id := range []string{"", ".", "BCDFGHJK", "BCDFGHJK.", ".AAAAAAAAAAAAAAAAAAAAAA", "bcdfghjk" + good[8:], "BCDF-GHJ" + good[8:],
		good + "A", good[:len(good)-1], DeviceID(NewDeviceCode()), strings.Repeat("B", 33) + good[8:]} {
		if _, _, ok := SplitUserCodeID(id); ok {
			t.Errorf("SplitUserCodeID(%q) took it", id)
		}
	}
	if uc, h, ok := SplitUserCodeID(good); !ok || uc != "BCDFGHJK" || !bytes.Equal(h[:], hash) {
		t.Errorf("SplitUserCodeID(%q) = %q %x %v", good, uc, h, ok)
	}
}

// Whatever a device sends as its code, ID answers without panicking, and
// what it accepts is a well-formed ID.
func FuzzDeviceCodeID(f *testing.F) {
	code, _ := testCodes.New("BCDFGHJK")
	for _, seed := range []string{code, NewDeviceCode(), "", ".", "..", "a.b", code + "." + code, strings.Repeat("A", 32) + ".", code[:33] + "%%"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, c string) {
		id, ok := testCodes.ID(c)
		if !ok {
			return
		}
		if strings.Contains(c, ".") {
			if _, _, split := SplitUserCodeID(id); !split {
				t.Fatalf("ID(%q) = %q, which SplitUserCodeID refuses", c, id)
			}
		}
	})
}

// mask is HMAC-SHA256 under the mask key, as crypto/hmac computes it.
func TestMaskIsHMAC(t *testing.T) {
	secret := []byte("a server secret of the tests")
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("device-code-mask-v1"))
	maskKey := m.Sum(nil)
	for range 20 {
		var r [24]byte
		rand.Read(r[:])
		want := hmac.New(sha256.New, maskKey)
		want.Write(r[:])
		got := make([]byte, 32)
		testCodes.mask(&r, got)
		if !bytes.Equal(got, want.Sum(nil)) {
			t.Fatalf("mask(%x) = %x, want HMAC-SHA256 %x", r, got, want.Sum(nil))
		}
	}
}
