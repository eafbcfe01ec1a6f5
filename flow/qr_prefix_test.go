package flow_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// Red team: qr_limit is counted per IPv6 /64 only, while every other
// limit holds a /56 and a /48 to 4 and 16 times it. Drawing is the one
// CPU-heavy thing a stranger can ask for (a PNG takes about a
// millisecond), and an image is drawn anew for every code, format and
// origin (the Host, without base_url). So one /48, holding 65,536 /64s,
// may have as many images drawn as it sends requests: its own codes (16 ×
// issue_limit a minute), both formats, any Host. Here 20 /64s of one /56,
// each over qr_limit, with a Host of its own per request.
func TestQRLimitCountsIPv6Prefixes(t *testing.T) {
	h := newHarness(t, harnessOptions{configure: withLimits(flow.Limits{QRPerIP: 2})})
	code := h.newCode("2001:db8:0:ff::1", "tv")["user_code"].(string)
	served := 0
	for i := range 20 { // 20 /64s of 2001:db8::/56
		for j := range 3 {
			host := fmt.Sprintf("h%d-%d.example", i, j)
			if a := h.qr(fmt.Sprintf("2001:db8:0:%x::1", i), host, code, "png"); a.status == http.StatusOK {
				served++
			}
		}
	}
	if want := 4 * 2; served > want {
		t.Fatalf("one /56 had %d images drawn; want at most %d (4 × qr_limit)", served, want)
	}
}
