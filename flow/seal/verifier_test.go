package seal

import (
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
)

func TestVerifierSealing(t *testing.T) {
	state, verifier := newCode(), newCode()
	sealed, err := Verifier(state, verifier)
	if err != nil {
		t.Fatal(err)
	}
	challenge := func(v string) string {
		h := sha256.Sum256([]byte(v))
		return base64.RawURLEncoding.EncodeToString(h[:])
	}
	if strings.Contains(sealed, verifier) || challenge(sealed) == challenge(verifier) {
		t.Fatal("the stored form reveals the verifier")
	}
	if got, err := OpenVerifier(state, sealed); err != nil || got != verifier {
		t.Fatalf("open: %q %v", got, err)
	}
	for name, try := range map[string]func() (string, error){
		"another state": func() (string, error) { return OpenVerifier(newCode(), sealed) },
		"tampered":      func() (string, error) { return OpenVerifier(state, flipFirst(sealed)) },
		"not base64":    func() (string, error) { return OpenVerifier(state, "!!") },
	} {
		if got, err := try(); err == nil {
			t.Errorf("%s: opened as %q", name, got)
		}
	}
}

// flipFirst changes the first character to another base64url one.
func flipFirst(s string) string {
	if s[0] == 'A' {
		return "B" + s[1:]
	}
	return "A" + s[1:]
}
