package flow_test

import (
	"cmp"
	"net/http"
	"strings"
	"testing"

	"github.com/oauth2-proxy/mockoidc"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// The metadata (RFC 8414) names our endpoints on our origin (the
// request's, or base_url) and the grants we answer, and passes on the
// scopes the upstream supports when its discovery document says.
func TestMetadataDocument(t *testing.T) {
	up := startOIDC(t)
	tests := []struct {
		name   string
		h      *harness
		origin string // "" for the test server's
		scopes []string
	}{
		{"endpoints given", newHarness(t, harnessOptions{}), "", nil},
		{"base_url", newHarness(t, harnessOptions{configure: func(c *flow.Config) { c.BaseURL = "https://auth.example" }}), "https://auth.example", nil},
		{"issuer discovered", issuerHarness(t, up.Issuer(), up), "", mockoidc.ScopesSupported},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			origin := cmp.Or(tc.origin, tc.h.srv.URL)
			a := tc.h.do(http.DefaultClient, "", http.MethodGet, "/.well-known/oauth-authorization-server", "", "")
			if a.status != http.StatusOK || a.header.Get("Content-Type") != "application/json" {
				t.Fatalf("%d %s", a.status, a.header.Get("Content-Type"))
			}
			md := a.json(t)
			for field, want := range map[string]any{
				"issuer":                        origin,
				"device_authorization_endpoint": origin + "/device/code",
				"token_endpoint":                origin + "/device/token",
				"grant_types_supported":         []string{"urn:ietf:params:oauth:grant-type:device_code", "refresh_token"},
				"scopes_supported":              tc.scopes,
			} {
				if !sameJSON(md[field], want) {
					t.Errorf("%s %v, want %v", field, md[field], want)
				}
			}
		})
	}
}

// The metadata names our origin: taken from Host it must not be cached
// publicly (a cache would serve one Host's document for another); with
// base_url it is the same for everyone.
func TestMetadataCachedPubliclyOnlyWithBaseURL(t *testing.T) {
	const path = "/.well-known/oauth-authorization-server"
	fromHost := newHarness(t, harnessOptions{})
	a := fromHost.do(http.DefaultClient, "", http.MethodGet, path, "", "")
	if cc := a.header.Get("Cache-Control"); a.status != http.StatusOK || strings.Contains(cc, "public") {
		t.Errorf("without base_url: %d Cache-Control %q", a.status, cc)
	}
	fixed := newHarness(t, harnessOptions{configure: func(c *flow.Config) { c.BaseURL = "https://auth.example" }})
	a = fixed.do(http.DefaultClient, "", http.MethodGet, path, "", "")
	if cc := a.header.Get("Cache-Control"); a.status != http.StatusOK || cc != "public, max-age=300" {
		t.Errorf("with base_url: %d Cache-Control %q", a.status, cc)
	}
}
