package flow_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// The device authorization answer (RFC 8628 §3.2): a device code, the
// user code, where to type it (verification_uri on the request's origin),
// the link with the code in it that opens its confirmation page, and how
// long the code lives and how often to poll: the defaults, or the site's.
func TestDeviceAuthorization(t *testing.T) {
	tests := []struct {
		name                string
		configure           func(*flow.Config)
		expiresIn, interval float64
	}{
		{"defaults", nil, 600, 5},
		{"the site's", func(c *flow.Config) { c.ExpiresIn, c.Interval = 2*time.Minute, 3*time.Second }, 120, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{configure: tc.configure})
			a := h.post("192.0.2.1", "/device/code", url.Values{"client_id": {"tv"}, "scope": {"openid"}})
			if a.status != http.StatusOK || a.header.Get("Content-Type") != "application/json" || a.header.Get("Cache-Control") != "no-store" {
				t.Fatalf("%d %s, Cache-Control %q: %s", a.status, a.header.Get("Content-Type"), a.header.Get("Cache-Control"), a.body)
			}
			out := a.json(t)
			deviceCode, _ := out["device_code"].(string)
			userCode, _ := out["user_code"].(string)
			if deviceCode == "" || userCode == "" {
				t.Fatalf("no device or user code: %v", out)
			}
			if out["verification_uri"] != h.srv.URL+"/device" || out["verification_uri_complete"] != h.srv.URL+"/device?code="+url.QueryEscape(userCode) {
				t.Errorf("verification_uri %v, verification_uri_complete %v", out["verification_uri"], out["verification_uri_complete"])
			}
			if out["expires_in"] != tc.expiresIn || out["interval"] != tc.interval {
				t.Errorf("expires_in %v, interval %v; want %v and %v", out["expires_in"], out["interval"], tc.expiresIn, tc.interval)
			}
			resp, err := http.Get(out["verification_uri_complete"].(string))
			link := read(t, resp, err)
			if link.status != http.StatusOK || !link.isPage("confirm") {
				t.Errorf("verification_uri_complete: %d, want the confirmation page", link.status)
			}
			h.pollWants(deviceCode, "tv", flow.ErrAuthorizationPending)
		})
	}
}
