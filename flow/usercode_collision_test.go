package flow_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
	"github.com/caddy-device-flow/caddy-device-flow/flow/codes"
)

// A user code that is already live is drawn again, never shared: with a
// format of only two codes, two devices get both, and a third is told to
// come back (the store is full) rather than handed a live code.
func TestLiveUserCodeIsRedrawn(t *testing.T) {
	tiny := codes.UserCodeFormat{Alphabet: "BC", Length: 1}
	h := newHarness(t, harnessOptions{configure: func(c *flow.Config) { c.UserCode = tiny }})
	first := h.newCode("192.0.2.1", "tv")["user_code"]
	second := h.newCode("192.0.2.1", "tv")["user_code"]
	if first == second {
		t.Fatalf("two live devices share the user code %v", first)
	}
	third := h.post("192.0.2.1", "/device/code", url.Values{"client_id": {"tv"}})
	if third.status != http.StatusServiceUnavailable || third.json(t)["error"] != "temporarily_unavailable" {
		t.Fatalf("third code: %d %s", third.status, third.body)
	}
}
