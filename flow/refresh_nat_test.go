package flow_test

import (
	"testing"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// A hundred addresses relaying junk refresh tokens at refresh_limit spend
// the client's total, and from then on each address is held to 20 relays
// a window. A NAT with many of the client's devices (a hotel's or an
// office's TVs, a carrier's CGNAT: 100 devices with 5-minute access
// tokens refresh 20 times a minute) still has them all relayed.
func TestSpentRefreshTotalDoesNotShutOutDevicesBehindANAT(t *testing.T) {
	up := startRefreshUpstream(t, false)
	h := refreshHarness(t, up, flow.Limits{RefreshPerIP: 30}) // the client's total: 3,000
	if ok, _ := h.relays(addresses("203.0.113.%d", 100), 30); ok != 3000 {
		t.Fatalf("spending the total: %d relayed", ok)
	}
	const devices = 20 // within refresh_limit 30 for the NAT's address
	if ok, refused := h.relays([]string{"100.64.0.1"}, devices); refused != 0 {
		t.Fatalf("%d devices behind one NAT refreshing once each: %d relayed, %d refused", devices, ok, refused)
	}
	if ok, _ := h.relays([]string{"100.64.0.1"}, 1); ok != 0 {
		t.Fatal("the 21st relay from one address past the client's total went through")
	}
}
