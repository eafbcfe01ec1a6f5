// Package testsecrets looks for secrets where they must not be (files,
// logs): as they are, and base64-encoded, as a []byte field of a JSON
// record holds them.
package testsecrets

import (
	"bytes"
	"encoding/base64"
	"testing"
)

// Forms is a secret as it might sit in a file: as is, and base64 in both
// alphabets at every alignment.
func Forms(secret string) []string {
	forms := []string{secret}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		for offset := range 3 {
			s := enc.EncodeToString(append(make([]byte, offset), secret...))
			if len(s) > 12 {
				forms = append(forms, s[4:len(s)-4]) // the part no neighbour changes
			}
		}
	}
	return forms
}

// Absent fails the test for each named secret found, in any of its
// Forms, in haystack, which is where says what.
func Absent(t testing.TB, where string, haystack []byte, secrets map[string]string) {
	t.Helper()
	for name, secret := range secrets {
		for _, form := range Forms(secret) {
			if bytes.Contains(haystack, []byte(form)) {
				t.Errorf("the %s is in the %s (as %.12q…)", name, where, form)
			}
		}
	}
}
