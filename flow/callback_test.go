package flow_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// signedIn is a person who pressed Approve and signed in at the upstream,
// stopped before following its redirect back: their browser and the
// callback URL (with the state and the authorization code).
func (h *harness) signedIn(userCode string) (browser *http.Client, callback string) {
	h.t.Helper()
	browser = personBrowser()
	h.approve(browser, userCode, func(u string) { callback = strings.TrimPrefix(u, h.srv.URL) })
	if callback == "" {
		h.t.Fatal("the upstream did not send the browser back")
	}
	return browser, callback
}

// The callback completes the sign-in only in the browser that pressed
// Approve: opened anywhere else (a link someone was sent, a browser with a
// session of its own or none) it is refused, and the device keeps waiting.
func TestCallbackInAnotherBrowserIsRefused(t *testing.T) {
	tests := []struct {
		name    string
		browser func(h *harness) *http.Client
	}{
		{"a browser with a session of its own", func(h *harness) *http.Client {
			b := personBrowser()
			h.do(b, "", http.MethodGet, "/device", "", "")
			return b
		}},
		{"a browser without a session", func(*harness) *http.Client { return personBrowser() }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{upstream: true})
			auth := h.newCode("192.0.2.1", h.up.ClientID)
			_, callback := h.signedIn(auth["user_code"].(string))
			got := h.do(tc.browser(h), "", http.MethodGet, callback, "", "")
			if got.status != http.StatusForbidden || !got.isPage("error") {
				t.Fatalf("the callback in another browser: %d, want 403 and the error page\n%s", got.status, got.body)
			}
			h.pollWants(auth["device_code"].(string), h.up.ClientID, flow.ErrAuthorizationPending)
		})
	}
}

// A callback is taken once: the same URL again (Back, a reload, a replay)
// finds nothing, and the device is delivered its tokens once.
func TestCallbackReplayIsRefused(t *testing.T) {
	h := newHarness(t, harnessOptions{upstream: true})
	auth := h.newCode("192.0.2.1", h.up.ClientID)
	b, callback := h.signedIn(auth["user_code"].(string))
	if first := h.do(b, "", http.MethodGet, callback, "", ""); first.status != http.StatusOK || !first.isPage("success") {
		t.Fatalf("the callback: %d\n%s", first.status, first.body)
	}
	if again := h.do(b, "", http.MethodGet, callback, "", ""); again.status != http.StatusBadRequest || !again.isPage("error") {
		t.Fatalf("the callback again: %d, want 400 and the error page\n%s", again.status, again.body)
	}
	if status, out := h.poll(auth["device_code"].(string), h.up.ClientID); status != http.StatusOK {
		t.Fatalf("device: %d %v, want its tokens", status, out)
	}
}
