package flow

import (
	"encoding/json"
	"testing"
)

// The hand-made body is byte for byte what encoding/json makes of the
// struct, whatever its strings hold (a verification URI comes from the
// request's Host when no base_url is set).
func TestDeviceAuthorizationJSON(t *testing.T) {
	for _, s := range []string{"", "plain", `quote " backslash \ slash /`, "<script>&amp;</script>", "tab\tnew\nline\rcr\x00\x01\x1f\x7f\b\f",
		"é ü 日本 🙂", "\u2028\u2029", "bad \xff\xfe utf-8 \xc3", "https://example.com/device?code=BCDF-GHJK"} {
		a := &deviceAuthorization{DeviceCode: s, UserCode: s + "1", VerificationURI: s, VerificationURIComplete: s + "?x", ExpiresIn: 600, Interval: -5}
		want, _ := json.Marshal(a)
		if got := a.appendJSON(nil); string(got) != string(want) {
			t.Errorf("appendJSON(%q) =\n%s\nwant\n%s", s, got, want)
		}
	}
}

func FuzzDeviceAuthorizationJSON(f *testing.F) {
	for _, s := range []string{"", "a\"b", "<>&", "\xff", "\u2028", "日本"} {
		f.Add(s, int64(600))
	}
	f.Fuzz(func(t *testing.T, s string, n int64) {
		a := &deviceAuthorization{DeviceCode: s, UserCode: s, VerificationURI: s, VerificationURIComplete: s, ExpiresIn: n, Interval: n}
		want, _ := json.Marshal(a)
		if got := a.appendJSON(nil); string(got) != string(want) {
			t.Fatalf("appendJSON(%q) = %s, want %s", s, got, want)
		}
	})
}
