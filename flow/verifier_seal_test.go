package flow

import (
	"strings"
	"testing"
)

func TestVerifierSealing(t *testing.T) {
	state, verifier := randomToken(32), randomToken(32)
	sealed, err := sealVerifier(state, verifier)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sealed, verifier) || pkceChallenge(sealed) == pkceChallenge(verifier) {
		t.Fatal("the stored form reveals the verifier")
	}
	if got, err := openVerifier(state, sealed); err != nil || got != verifier {
		t.Fatalf("open: %q %v", got, err)
	}
	for name, try := range map[string]func() (string, error){
		"another state": func() (string, error) { return openVerifier(randomToken(32), sealed) },
		"tampered":      func() (string, error) { return openVerifier(state, flipFirst(sealed)) },
		"not base64":    func() (string, error) { return openVerifier(state, "!!") },
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
