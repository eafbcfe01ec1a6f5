package seal

import (
	"crypto/cipher"
	"encoding/base64"
	"errors"
)

// The PKCE verifier waits in the store between Approve and the callback.
// It is kept encrypted under a key derived from the state, which the store
// never holds (logins are keyed by an HMAC of it): a copy of the store
// plus an intercepted authorization code is still not enough to redeem it.

func verifierAEAD(state string) (cipher.AEAD, error) {
	return derivedAEAD([]byte(state), nil, "caddy-device-flow pkce verifier v1")
}

// Verifier encrypts the verifier for the login stored under state.
func Verifier(state, verifier string) (string, error) {
	aead, err := verifierAEAD(state)
	if err != nil {
		return "", err
	}
	// Each state is random and used once, so its key is too: a zero nonce is safe.
	nonce := make([]byte, aead.NonceSize())
	return base64.RawURLEncoding.EncodeToString(aead.Seal(nil, nonce, []byte(verifier), nil)), nil
}

// OpenVerifier recovers the verifier with the state the callback brought.
func OpenVerifier(state, sealed string) (string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil {
		return "", errors.New("stored verifier is not base64url")
	}
	aead, err := verifierAEAD(state)
	if err != nil {
		return "", err
	}
	plain, err := aead.Open(nil, make([]byte, aead.NonceSize()), raw, nil)
	return string(plain), err
}
