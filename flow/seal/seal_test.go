package seal

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
)

func newCode() string {
	b := make([]byte, 40)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// PublicKey takes the Edwards-curve shortcut; it must give exactly the
// X25519 public key that Open's private key belongs to.
func TestPublicKeyIsX25519(t *testing.T) {
	for range 200 {
		code := newCode()
		priv, err := privateKey(code)
		if err != nil {
			t.Fatal(err)
		}
		got, err := PublicKey(code)
		if err != nil {
			t.Fatal(err)
		}
		if want := priv.PublicKey().Bytes(); !bytes.Equal(got, want) {
			t.Fatalf("PublicKey = %x, X25519 gives %x", got, want)
		}
	}
}

func TestSealOpens(t *testing.T) {
	code := newCode()
	pub, err := PublicKey(code)
	if err != nil {
		t.Fatal(err)
	}
	tokens := []byte(`{"access_token":"secret-access-token"}`)
	sealed, err := Seal(pub, tokens)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("secret-access-token")) {
		t.Fatal("sealed tokens contain the plaintext")
	}
	got, err := Open(code, sealed)
	if err != nil || !bytes.Equal(got, tokens) {
		t.Fatalf("Open: %q %v", got, err)
	}
	if _, err := Open(newCode(), sealed); err == nil {
		t.Fatal("another device code opened the tokens")
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	if _, err := Open(code, tampered); err == nil {
		t.Fatal("tampered tokens opened")
	}
	if _, err := Open(code, sealed[:10]); err == nil {
		t.Fatal("truncated tokens opened")
	}
	if _, err := Seal([]byte("short"), tokens); err == nil {
		t.Fatal("sealed to a malformed public key")
	}
}

// BenchmarkPublicKey measures the shortcut against crypto/ecdh, the reason
// it exists (see PublicKey).
func BenchmarkPublicKey(b *testing.B) {
	code := newCode()
	b.Run("edwards", func(b *testing.B) {
		for b.Loop() {
			PublicKey(code)
		}
	})
	b.Run("ecdh", func(b *testing.B) {
		for b.Loop() {
			k, _ := privateKey(code)
			_ = k.PublicKey().Bytes()
		}
	})
}

func BenchmarkSeal(b *testing.B) {
	pub, _ := PublicKey(newCode())
	tokens := []byte(strings.Repeat("t", 1500))
	for b.Loop() {
		Seal(pub, tokens)
	}
}

func BenchmarkOpen(b *testing.B) {
	code := newCode()
	pub, _ := PublicKey(code)
	sealed, _ := Seal(pub, []byte(strings.Repeat("t", 1500)))
	for b.Loop() {
		Open(code, sealed)
	}
}
