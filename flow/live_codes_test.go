package flow_test

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// A /48 may ask for 16 × issue_limit codes a window, so 21 /48s fill the
// default max_live_codes (2,000,000 in a 10-minute lifetime at 9,600 a
// minute each). Here the same proportion in one minute: issue_limit 8
// (128 a minute per /48), a cap of 21 × 128. Past the cap each address
// still gets a few codes (2 a minute per /64, 32 per /48), so a device
// from an address that asked for little still gets a code while the
// flooding addresses are refused.
func TestLiveCodesFloodDoesNotShutOutNewDevices(t *testing.T) {
	const perIP, slash48s = 8, 21
	const liveCodes = slash48s * 16 * perIP
	h := newHarness(t, harnessOptions{configure: withLimits(flow.Limits{IssuePerIP: perIP, LiveCodes: liveCodes})})
	ask := func(ip string) answer {
		return h.post(ip, "/device/code", url.Values{"client_id": {"tv"}})
	}
	flood := func(n int) (granted int) {
		for s := range 16 { // one /64 in each of 16 /56s
			ip := fmt.Sprintf("2001:db8:%x:%x00::1", n, s)
			for range perIP {
				if ask(ip).status == http.StatusOK {
					granted++
				}
			}
		}
		return granted
	}
	granted := 0
	for n := range slash48s {
		granted += flood(n)
	}
	if granted != liveCodes {
		t.Fatalf("the flood got %d codes, want the cap, %d", granted, liveCodes)
	}
	for _, ip := range []string{"198.51.100.7", "2001:db8:ffff::1"} {
		if a := ask(ip); a.status != http.StatusOK {
			t.Fatalf("a device from %s, which asked for nothing, after %d /48s filled the cap: %d %s, want a code", ip, slash48s, a.status, a.body)
		}
	}
	// The next minute a flooding /48 gets its allowance, 2 codes per /64
	// and 32 per /48, and is refused the rest with 503 and Retry-After.
	h.clock.Advance(flow.DefaultIssueWindow)
	if got := flood(0); got != 32 {
		t.Fatalf("a flooding /48 past the cap got %d codes in a minute, want 32", got)
	}
	const flooder = "2001:db8:1:ff00::1" // a new /64 of another flooding /48
	for i := range 2 {
		if a := ask(flooder); a.status != http.StatusOK {
			t.Fatalf("code %d of a new /64 past the cap: %d %s", i, a.status, a.body)
		}
	}
	a := ask(flooder)
	if a.status != http.StatusServiceUnavailable || a.json(t)["error"] != "temporarily_unavailable" || a.header.Get("Retry-After") == "" {
		t.Fatalf("a /64 past its allowance past the cap: %d %s Retry-After=%q", a.status, a.body, a.header.Get("Retry-After"))
	}
}

// Past the cap, the codes asked within the allowance stop at half the cap
// (in two code lifetimes), and then everyone is refused: the store holds at
// most LiveCodeCeiling codes, however many addresses ask.
func TestLiveCodeCeiling(t *testing.T) {
	const liveCodes, perIP = 100, 10
	h := newHarness(t, harnessOptions{configure: withLimits(flow.Limits{IssuePerIP: perIP, LiveCodes: liveCodes})})
	ask := func(ip string) answer {
		return h.post(ip, "/device/code", url.Values{"client_id": {"tv"}})
	}
	granted := 0
	var last answer
	for i := range 200 {
		for range perIP {
			if last = ask(fmt.Sprintf("10.0.%d.%d", i/250, i%250+1)); last.status == http.StatusOK {
				granted++
			}
		}
	}
	// 10 addresses fill the cap, 2 of their codes each within the
	// allowance; then each further address gets 2 until 50 were asked
	// within it: 100 + 30.
	if want := 130; granted != want || granted > flow.LiveCodeCeiling(liveCodes) {
		t.Fatalf("200 addresses asking %d times each got %d codes, want %d (ceiling %d)", perIP, granted, want, flow.LiveCodeCeiling(liveCodes))
	}
	if last.status != http.StatusServiceUnavailable || last.header.Get("Retry-After") == "" {
		t.Fatalf("past the ceiling: %d Retry-After=%q", last.status, last.header.Get("Retry-After"))
	}
	if n := h.logs.FilterMessageSnippet("1.5 × max_live_codes").Len(); n == 0 {
		t.Fatal("reaching the ceiling logged no warning")
	}
	// Two lifetimes on, every code has expired and the counts with them.
	h.clock.Advance(2 * flow.DefaultExpiresIn)
	if a := ask("10.9.9.9"); a.status != http.StatusOK {
		t.Fatalf("two lifetimes on: %d %s", a.status, a.body)
	}
}
