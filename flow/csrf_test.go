package flow_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// Every form of the verification page carries the CSRF token of the
// browser's session: without it, with a made-up one or with another
// browser's, Approve, Deny and Look up are refused (403) and nothing is
// done: the device keeps waiting, no sign-in is started.
func TestFormsWithoutTheirCSRFTokenAreRefused(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	auth := h.newCode("192.0.2.1", "tv")
	userCode := auth["user_code"].(string)
	b := personBrowser()
	b.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	own := formToken(t, h.do(b, "", http.MethodGet, "/device", "", "").body)
	others := formToken(t, h.do(personBrowser(), "", http.MethodGet, "/device", "", "").body)
	submit := func(csrf []string, action string) answer {
		form := url.Values{"user_code": {userCode}, "action": {action}}
		if csrf != nil {
			form["csrf"] = csrf
		}
		return h.do(b, "", http.MethodPost, "/device", "application/x-www-form-urlencoded", form.Encode())
	}
	tests := []struct {
		name string
		csrf []string
	}{
		{"no token", nil},
		{"an empty token", []string{""}},
		{"a made-up token", []string{"forged-token"}},
		{"another browser's token", []string{others}},
	}
	for _, tc := range tests {
		for _, action := range []string{"approve", "deny", "lookup"} {
			if a := submit(tc.csrf, action); a.status != http.StatusForbidden || !a.isPage("enter") {
				t.Errorf("%s, %s: %d, want 403 and the entry page", tc.name, action, a.status)
			}
		}
	}
	h.pollWants(auth["device_code"].(string), "tv", flow.ErrAuthorizationPending)
	if n := len(h.pendingVerifiers(t)); n != 0 {
		t.Errorf("%d sign-ins started", n)
	}
	// The browser's own token goes through.
	if a := submit([]string{own}, "lookup"); a.status != http.StatusSeeOther {
		t.Fatalf("with the session's token: %d, want 303 to the confirmation page", a.status)
	}
}
