// Package seal encrypts what waits in the store for someone who holds a
// secret the store never sees: a device's tokens, sealed to a key derived
// from its device code, and a sign-in's PKCE verifier, sealed under its
// state.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"

	"filippo.io/edwards25519"
)

// Tokens wait in the store between the upstream callback and the device's
// next poll. They are sealed so that a copy of the store yields nothing:
// the device code (which the store never holds) derives an X25519 key pair;
// the record keeps only the public half. The callback, which has no device
// code, seals to that public key with a fresh ephemeral key (ECDH, HKDF,
// AES-256-GCM); only a poll that presents the device code can open it.

const sealInfo = "caddy-device-flow token seal v1"

// sealSeed derives the device code's X25519 private key bytes.
func sealSeed(deviceCode string) ([]byte, error) {
	return hkdf.Key(sha256.New, []byte(deviceCode), nil, "caddy-device-flow seal key v1", 32)
}

// privateKey derives the device code's private key.
func privateKey(deviceCode string) (*ecdh.PrivateKey, error) {
	seed, err := sealSeed(deviceCode)
	if err != nil {
		return nil, err
	}
	return ecdh.X25519().NewPrivateKey(seed)
}

// PublicKey is what the store keeps of the device code's key pair: the
// X25519 public key of privateKey(code). Every issued code pays for it,
// so it is computed on the birationally equivalent Edwards curve, whose
// fixed-base multiplication uses precomputed tables: less than half the
// time of crypto/ecdh's Montgomery ladder (BenchmarkPublicKey), a fifth
// of the CPU of issuing a code. The two agree because X25519 clamping
// equals Ed25519's and the Montgomery u = (1+y)/(1-y) of the result is the
// X25519 public key (TestPublicKeyIsX25519).
func PublicKey(deviceCode string) ([]byte, error) {
	seed, err := sealSeed(deviceCode)
	if err != nil {
		return nil, err
	}
	k, err := edwards25519.NewScalar().SetBytesWithClamping(seed)
	if err != nil {
		return nil, err
	}
	return new(edwards25519.Point).ScalarBaseMult(k).BytesMontgomery(), nil
}

// Seal encrypts plaintext to the public key: ephemeral public key ‖ ciphertext.
func Seal(publicKey, plaintext []byte) ([]byte, error) {
	pub, err := ecdh.X25519().NewPublicKey(publicKey)
	if err != nil {
		return nil, err
	}
	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	shared, err := eph.ECDH(pub)
	if err != nil {
		return nil, err
	}
	aead, err := sealAEAD(shared, eph.PublicKey().Bytes(), publicKey)
	if err != nil {
		return nil, err
	}
	// The key is used once, so a zero nonce is safe.
	nonce := make([]byte, aead.NonceSize())
	return aead.Seal(eph.PublicKey().Bytes(), nonce, plaintext, nil), nil
}

// Open reverses Seal with the device code.
func Open(deviceCode string, sealed []byte) ([]byte, error) {
	if len(sealed) < 32 {
		return nil, errors.New("sealed tokens too short")
	}
	priv, err := privateKey(deviceCode)
	if err != nil {
		return nil, err
	}
	ephPub, err := ecdh.X25519().NewPublicKey(sealed[:32])
	if err != nil {
		return nil, err
	}
	shared, err := priv.ECDH(ephPub)
	if err != nil {
		return nil, err
	}
	aead, err := sealAEAD(shared, sealed[:32], priv.PublicKey().Bytes())
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	return aead.Open(nil, nonce, sealed[32:], nil)
}

func sealAEAD(shared, ephPub, recipientPub []byte) (cipher.AEAD, error) {
	salt := append(append([]byte{}, ephPub...), recipientPub...)
	return derivedAEAD(shared, salt, sealInfo)
}

// derivedAEAD is AES-256-GCM under a key derived (HKDF-SHA256) from secret.
// Every key it makes is used for one message, so callers use a zero nonce.
func derivedAEAD(secret, salt []byte, info string) (cipher.AEAD, error) {
	key, err := hkdf.Key(sha256.New, secret, salt, info, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
