package integration

import (
	"net/http"
	"slices"
	"testing"
)

// TestAuthorizeParamsFromCaddyfile: authorize_param lines, at the site
// and in the client block, with an {env.*} placeholder, reach mockoidc's
// authorization endpoint; the client's prompt replaces the site's.
func TestAuthorizeParamsFromCaddyfile(t *testing.T) {
	t.Setenv("DEVICE_FLOW_TEST_AUDIENCE", "https://api.example.com")
	up := startUpstream(t)
	cfg := up.Config()
	endpoints := "authorization_endpoint " + up.AuthorizationEndpoint() + "\n\t\ttoken_endpoint " + up.TokenEndpoint()
	client := "scopes openid profile\n\t\t\tauthorize_param prompt login\n\t\t\tauthorize_param audience {env.DEVICE_FLOW_TEST_AUDIENCE}"
	site := "authorize_param access_type offline\n\t\tauthorize_param prompt consent"
	startCaddy(t, siteCaddyfile(endpoints, "badger "+storeDir(t), cfg.ClientID, cfg.ClientSecret, client, site))

	tv := newDevice(t, cfg.ClientID, "openid")
	if done := newBrowser(t).approve(tv.userCode()); done.status != http.StatusOK || !done.is("success") {
		t.Fatalf("after the upstream: %d %s\n%s", done.status, done.url, done.body)
	}
	queries := up.AuthorizeQueries()
	if len(queries) != 1 {
		t.Fatalf("%d authorization requests, want 1", len(queries))
	}
	for name, want := range map[string][]string{
		"access_type": {"offline"},
		"prompt":      {"login"},
		"audience":    {"https://api.example.com"},
		"scope":       {"openid"},
	} {
		if got := queries[0][name]; !slices.Equal(got, want) {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
}
