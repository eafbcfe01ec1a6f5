package flow

import (
	"bytes"
	"testing"
)

// SealPublicKey takes the Edwards-curve shortcut; it must give exactly the
// X25519 public key that open's private key belongs to.
func TestSealPublicKeyIsX25519(t *testing.T) {
	for range 200 {
		code := NewDeviceCode()
		priv, err := sealPrivateKey(code)
		if err != nil {
			t.Fatal(err)
		}
		got, err := SealPublicKey(code)
		if err != nil {
			t.Fatal(err)
		}
		if want := priv.PublicKey().Bytes(); !bytes.Equal(got, want) {
			t.Fatalf("SealPublicKey = %x, X25519 gives %x", got, want)
		}
	}
}
