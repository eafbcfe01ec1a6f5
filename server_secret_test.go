package deviceflow

import (
	"fmt"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// TestServerSecretChecks: a server_secret from an unset variable, or too
// short, fails the load (caddy validate too) without showing the value.
func TestServerSecretChecks(t *testing.T) {
	t.Setenv("DF_TEST_SHORT_SERVER_SECRET", "short-s3cr3t")
	t.Setenv("DF_TEST_SERVER_SECRET", "a-long-enough-s3cr3t-for-the-server-0123456789")
	tests := []struct {
		name, secret, want string
	}{
		{"unset variable", "{env.DF_TEST_UNSET_SERVER_SECRET}", "server_secret is empty after expanding {env.DF_TEST_UNSET_SERVER_SECRET} (is the variable set?)"},
		{"too short", "{env.DF_TEST_SHORT_SERVER_SECRET}", "server_secret is too short: 12 bytes, at least 32"},
		{"long enough", "{env.DF_TEST_SERVER_SECRET}", ""},
		{"none", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := fmt.Sprintf(`{"apps":{"http":{"servers":{"s":{"listen":["127.0.0.1:0"],"routes":[{"handle":[{
				"handler":"device_flow","server_secret":%q,
				"authorization_endpoint":"https://idp.example/authorize","token_endpoint":"https://idp.example/token",
				"storage":{"backend":"badger","dir":%q}}]}]}}}}}`, tc.secret, t.TempDir())
			var cfg *caddy.Config
			if err := caddy.StrictUnmarshalJSON([]byte(raw), &cfg); err != nil {
				t.Fatal(err)
			}
			err := caddy.Validate(cfg)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("validate: %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("the error shows the secret: %v", err)
			}
		})
	}
}

// TestServerSecretIsBoundToTheHandler: handlers given one server_secret
// still get keys of their own, as they get key spaces of their own.
func TestServerSecretIsBoundToTheHandler(t *testing.T) {
	const secret = "one server secret for two sites, 0123456789"
	a := Handler{Name: "a", ServerSecret: secret}
	b := Handler{Name: "b", ServerSecret: secret}
	ka, err := a.serverSecret()
	if err != nil {
		t.Fatal(err)
	}
	kb, err := b.serverSecret()
	if err != nil {
		t.Fatal(err)
	}
	again, _ := a.serverSecret()
	if string(ka) == string(kb) || string(ka) != string(again) || strings.Contains(string(ka), secret) {
		t.Fatal("the key is not the handler's own, or not stable")
	}
}
