package flow_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

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
