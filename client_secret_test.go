package deviceflow

import (
	"fmt"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// validateClientSecret runs what `caddy validate` runs on a config whose
// one client has the given secret.
func validateClientSecret(t *testing.T, secret string) error {
	t.Helper()
	raw := fmt.Sprintf(`{"apps":{"http":{"servers":{"s":{"listen":["127.0.0.1:0"],"routes":[{"handle":[{
		"handler":"device_flow",
		"authorization_endpoint":"https://idp.example/authorize","token_endpoint":"https://idp.example/token",
		"clients":{"tv":{"secret":%q}},
		"storage":{"backend":"badger","dir":%q}}]}]}}}}}`, secret, t.TempDir())
	var cfg *caddy.Config
	if err := caddy.StrictUnmarshalJSON([]byte(raw), &cfg); err != nil {
		t.Fatal(err)
	}
	return caddy.Validate(cfg)
}

// TestEmptyClientSecretFailsToLoad: a secret from an unset variable is a
// load error naming the client and the placeholder (never the value),
// not a public client; caddy validate says so too.
func TestEmptyClientSecretFailsToLoad(t *testing.T) {
	t.Setenv("DF_TEST_SET_SECRET", "s3cr3t-value")
	t.Setenv("DF_TEST_BLANK_SECRET", "  ")
	tests := []struct {
		name, secret, want string
	}{
		{"unset variable", "{env.DF_TEST_UNSET_SECRET}", "client tv: secret is empty after expanding {env.DF_TEST_UNSET_SECRET} (is the variable set?)"},
		{"blank variable", "{env.DF_TEST_BLANK_SECRET}", "client tv: secret is empty after expanding {env.DF_TEST_BLANK_SECRET}"},
		{"two unset", "{env.DF_TEST_UNSET_A}{env.DF_TEST_UNSET_B}", "after expanding {env.DF_TEST_UNSET_A}, {env.DF_TEST_UNSET_B}"},
		{"only spaces", "   ", "client tv: secret is empty"},
		{"set variable", "{env.DF_TEST_SET_SECRET}", ""},
		{"set beside unset", "{env.DF_TEST_UNSET_SECRET}{env.DF_TEST_SET_SECRET}", ""},
		{"literal", "literal-secret", ""},
		{"none: a public client", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := validateClientSecret(t, tc.secret)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("validate: %v, want it to say %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("the error shows a secret: %v", err)
			}
		})
	}
}
