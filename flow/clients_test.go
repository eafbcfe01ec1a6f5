package flow_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// With a client allow-list, only its clients get device codes, each with
// no more than its scopes, and a device code is polled for only by the
// client it was issued to.
func TestClientAllowList(t *testing.T) {
	h := newHarness(t, harnessOptions{configure: func(c *flow.Config) {
		c.Clients = map[string]flow.Client{"tv": {Scopes: []string{"openid", "profile"}}, "kiosk": {}}
	}})
	deviceCode := h.newCode("192.0.2.1", "tv")["device_code"].(string)
	poll := func(clientID string) url.Values {
		return url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {deviceCode}, "client_id": {clientID}}
	}
	tests := []struct {
		name, path string
		form       url.Values
		want       string // the error; "" for 200
	}{
		{"a listed client, its scopes", "/device/code", url.Values{"client_id": {"tv"}, "scope": {"openid profile"}}, ""},
		{"an unlisted client", "/device/code", url.Values{"client_id": {"someone-else"}}, flow.ErrInvalidClient},
		{"a scope the client may not have", "/device/code", url.Values{"client_id": {"tv"}, "scope": {"openid admin"}}, flow.ErrInvalidScope},
		{"an unlisted client polls the device's code", "/device/token", poll("someone-else"), flow.ErrInvalidClient},
		{"another listed client polls the device's code", "/device/token", poll("kiosk"), flow.ErrInvalidClient},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := h.post("192.0.2.1", tc.path, tc.form)
			if tc.want == "" {
				if a.status != http.StatusOK {
					t.Fatalf("%d %s, want 200", a.status, a.body)
				}
				return
			}
			if out := a.json(t); a.status != http.StatusBadRequest || out["error"] != tc.want {
				t.Fatalf("%d %v, want 400 %s", a.status, out, tc.want)
			}
		})
	}
	// The device's own client still finds it waiting.
	h.pollWants(deviceCode, "tv", flow.ErrAuthorizationPending)
}
