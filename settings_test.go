package deviceflow

import (
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
