package flow_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// With the store gone (its database closed under the service), a flood of
// requests is answered 503 + Retry-After each, and the log gets the first
// failure, not a line per request.
func TestStoreOutageDoesNotFloodTheLog(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.newCode("192.0.2.1", "tv") // the secret is loaded
	if err := h.db.Close(); err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		a := h.post("192.0.2.1", "/device/code", url.Values{"client_id": {"tv"}})
		if a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") == "" {
			t.Fatalf("request %d: %d %s, want 503 with Retry-After", i, a.status, a.body)
		}
	}
	n := 0
	for _, e := range h.logs.All() {
		if strings.HasPrefix(e.Message, "device flow store") {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("300 failed requests wrote %d store log lines, want 1", n)
	}
}
