package deviceflow

import (
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// The limits' knobs reach the protocol core as given; what they do there
// is flow's limits tests (TestGuessLimitHoldsForTheRightCode,
// TestGuessLimitTotalAndWindow, TestIssueLimits, TestLimitsOff), and the
// Caddyfile's spelling of them is the adapt tests'.
func TestSettingsCarryTheLimits(t *testing.T) {
	per := func(n int, d time.Duration) *RateLimit { return &RateLimit{Count: n, Per: caddy.Duration(d)} }
	tests := []struct {
		name   string
		limits *LimitsConfig
		want   flow.Limits
	}{
		{"none: the flow's defaults", nil, flow.Limits{}},
		{"every knob", &LimitsConfig{
			GuessLimit: per(5, time.Minute), GuessLimitTotal: 8, IssueLimit: per(6, 2*time.Minute),
			RefreshLimit: per(7, 3*time.Minute), MaxLiveCodes: 9,
		}, flow.Limits{
			GuessesPerIP: 5, GuessWindow: time.Minute, GuessesTotal: 8, IssuePerIP: 6, IssueWindow: 2 * time.Minute,
			RefreshPerIP: 7, RefreshWindow: 3 * time.Minute, LiveCodes: 9,
		}},
		{"off", &LimitsConfig{Off: true, GuessLimit: per(1, time.Minute)}, flow.Limits{Off: true, GuessesPerIP: 1, GuessWindow: time.Minute}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := &Handler{Issuer: "https://idp.example", Limits: tc.limits}
			cfg, err := h.settings()
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Limits != tc.want {
				t.Fatalf("flow limits %+v, want %+v", cfg.Limits, tc.want)
			}
		})
	}
}

// TestValidateLimits: JSON's rate limits and proximity prefixes are held
// to flow's rules, each refusal said once (not again by flow's check), and
// one given as zero is refused rather than silently the default.
func TestValidateLimits(t *testing.T) {
	per := func(n int, d time.Duration) *RateLimit { return &RateLimit{Count: n, Per: caddy.Duration(d)} }
	tests := []struct {
		name string
		h    Handler
		want string
	}{
		{"zero count", Handler{Limits: &LimitsConfig{GuessLimit: per(0, time.Minute)}}, "guess_limit needs a positive count and window, not 0 per 1m0s"},
		{"no window", Handler{Limits: &LimitsConfig{IssueLimit: &RateLimit{Count: 5}}}, "issue_limit needs a positive count and window, not 5 per 0s"},
		{"negative count", Handler{Limits: &LimitsConfig{RefreshLimit: per(-1, time.Minute)}}, "refresh_limit needs a positive count and window, not -1 per 1m0s"},
		{"negative total", Handler{Limits: &LimitsConfig{GuessLimitTotal: -1}}, "guess_limit_total must be positive, not -1"},
		{"negative live codes", Handler{Limits: &LimitsConfig{MaxLiveCodes: -1}}, "max_live_codes must be positive, not -1"},
		{"zero proximity_prefix", Handler{ProximityPrefix: &ProximityPrefix{}}, "proximity_prefix wants IPv4 bits 1-32 and IPv6 bits 1-128, not 0 and 0"},
		{"client's zero proximity_prefix", Handler{Clients: map[string]*ClientConfig{"tv": {ProximityPrefix: &ProximityPrefix{}}}}, "client tv: proximity_prefix wants IPv4 bits 1-32"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.h.Issuer = "https://idp.example"
			err := tc.h.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want it to say %s", err, tc.want)
			}
			if n := strings.Count(err.Error(), "\n") + 1; n != 1 {
				t.Errorf("Validate() said %d things, want one: %v", n, err)
			}
		})
	}
}
