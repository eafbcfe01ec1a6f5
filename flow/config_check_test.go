package flow_test

import (
	"strings"
	"testing"
	"time"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// Config.Check holds every rule of the settings, for a configuration
// checked before it is loaded (the Caddyfile, Handler.Validate); what
// only running needs (a store, pages) is left out.
func TestConfigCheck(t *testing.T) {
	ok := flow.Config{AuthorizationEndpoint: "https://idp.example/authorize", TokenEndpoint: "https://idp.example/token"}
	tests := []struct {
		name string
		edit func(*flow.Config)
		want string
	}{
		{"fine without a store or pages", func(*flow.Config) {}, ""},
		{"no upstream", func(c *flow.Config) { *c = flow.Config{} }, "needs the upstream"},
		{"one endpoint", func(c *flow.Config) { c.AuthorizationEndpoint = "" }, "needs the upstream"},
		{"issuer and endpoints", func(c *flow.Config) { c.Issuer = "https://idp.example" }, "not both"},
		{"relative endpoint", func(c *flow.Config) { c.TokenEndpoint = "/token" }, "token_endpoint: not an absolute http(s) URL"},
		{"prefix with a trailing slash", func(c *flow.Config) { c.Prefix = "/oauth/" }, "prefix must start with /"},
		{"prefix without a slash", func(c *flow.Config) { c.Prefix = "oauth" }, "prefix must start with /"},
		{"short expiry", func(c *flow.Config) { c.ExpiresIn = 5 * time.Second }, "expires_in 5s is too short"},
		{"token_auth", func(c *flow.Config) { c.TokenAuth = "jwt" }, "token_auth must be basic or post"},
		{"proximity", func(c *flow.Config) { c.Proximity = "strict" }, "proximity must be"},
		{"proximity_prefix", func(c *flow.Config) { c.ProximityPrefix = flow.ProximityPrefix{IPv4: 33, IPv6: 56} }, "IPv4 bits 1-32"},
		{"negative guesses", func(c *flow.Config) { c.Limits.GuessesPerIP = -1 }, "guess_limit needs a positive count and window, not -1 per 15m0s"},
		{"negative guess window", func(c *flow.Config) { c.Limits.GuessWindow = -time.Minute }, "guess_limit needs a positive count and window, not 20 per -1m0s"},
		{"negative issue window", func(c *flow.Config) { c.Limits.IssueWindow = -time.Second }, "issue_limit needs a positive count"},
		{"negative refreshes", func(c *flow.Config) { c.Limits.RefreshPerIP = -5 }, "refresh_limit needs a positive count"},
		{"negative guess total", func(c *flow.Config) { c.Limits.GuessesTotal = -1 }, "guess_limit_total must be positive, not -1"},
		{"negative live codes", func(c *flow.Config) { c.Limits.LiveCodes = -1 }, "max_live_codes must be positive"},
		{"negative approves", func(c *flow.Config) { c.Limits.ApprovesPerIP = -1 }, "Limits.ApprovesPerIP must be positive"},
		{"negative refreshes in flight", func(c *flow.Config) { c.Limits.RefreshInFlight = -1 }, "Limits.RefreshInFlight must be positive"},
		{"negative QR images", func(c *flow.Config) { c.Limits.QRPerIP = -1 }, "Limits.QRPerIP must be positive"},
		{"negative limits, off", func(c *flow.Config) { c.Limits = flow.Limits{Off: true, IssuePerIP: -1} }, "issue_limit needs a positive count"},
		{"limits given", func(c *flow.Config) {
			c.Limits = flow.Limits{GuessesPerIP: 1, GuessWindow: time.Second, IssuePerIP: 1, IssueWindow: time.Second, LiveCodes: 1}
		}, ""},
		{"code_networks off", func(c *flow.Config) { c.CodeNetworks = -1 }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			err := c.Check()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Check: %v, want none", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Check: %v, want %q", err, tc.want)
			}
		})
	}
}

// TestLiveCodeCap: the cap a store is told to expect is max_live_codes,
// its default when unset, and none when the limits are off.
func TestLiveCodeCap(t *testing.T) {
	for _, tc := range []struct {
		limits flow.Limits
		want   int
	}{
		{flow.Limits{}, flow.DefaultLiveCodes},
		{flow.Limits{LiveCodes: 500}, 500},
		{flow.Limits{LiveCodes: 500, Off: true}, 0},
	} {
		if got := tc.limits.LiveCodeCap(); got != tc.want {
			t.Errorf("%+v.LiveCodeCap() = %d, want %d", tc.limits, got, tc.want)
		}
	}
}
