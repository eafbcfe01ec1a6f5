package flow_test

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// Whoever holds a /56 or a /48 has 256 or 65,536 /64s: issue limits count
// those wider prefixes too, with 4 and 16 times the /64's allowance.
func TestIssueLimitsCountIPv6Prefixes(t *testing.T) {
	h := newHarness(t, harnessOptions{configure: withLimits(flow.Limits{IssuePerIP: 2})})
	ask := func(ip string) int {
		return h.post(ip, "/device/code", url.Values{"client_id": {"tv"}}).status
	}
	count := func(ips []string) (granted int) {
		for _, ip := range ips {
			if ask(ip) == http.StatusOK {
				granted++
			}
		}
		return granted
	}
	var in56, in48 []string
	for i := range 20 {
		in56 = append(in56, fmt.Sprintf("2001:db8:0:%x::1", i)) // 20 /64s of 2001:db8:0::/56
	}
	for i := range 60 {
		in48 = append(in48, fmt.Sprintf("2001:db8:1:%x00::1", i+1)) // 60 /56s of 2001:db8:1::/48
	}
	if got := count(in56); got != 8 {
		t.Errorf("one /56 got %d codes, want 8 (4 × issue_limit)", got)
	}
	if got := count(in48); got != 32 {
		t.Errorf("one /48 got %d codes, want 32 (16 × issue_limit)", got)
	}
	if ask("2001:db8:2::1") != http.StatusOK {
		t.Error("another /48 is held back")
	}
}

// guess_limit holds per /64, 4 × per /56 and 16 × per /48, as issue_limit.
func TestGuessLimitCountsIPv6Prefixes(t *testing.T) {
	h := newHarness(t, harnessOptions{configure: withLimits(flow.Limits{GuessesPerIP: 2})})
	for _, tc := range []struct {
		name     string
		ips      []string
		answered int
	}{
		{"20 /64s of one /56", addresses("2001:db8:0:%x::1", 20), 8},
		{"60 /56s of one /48", addresses("2001:db8:1:%x00::1", 60), 32},
		{"another /48", []string{"2001:db8:2::1"}, 2},
	} {
		if got := h.guessFrom(tc.ips, 3); got[http.StatusBadRequest] != tc.answered {
			t.Errorf("%s: %v; want %d answered 400", tc.name, got, tc.answered)
		}
	}
}
