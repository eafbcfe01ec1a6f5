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
