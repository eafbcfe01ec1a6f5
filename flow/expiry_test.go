package flow_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// A device code lives Config.ExpiresIn from its issue, to the nanosecond.
// From then on its device hears expired_token (the expired event), even
// with tokens waiting for it; a person who looks it up is answered exactly
// as for a wrong code; and a sign-in begun before ends on the expired
// page, approving nothing.
func TestExpiry(t *testing.T) {
	const (
		lifetime = 2 * time.Minute
		deviceIP = "198.51.100.1"
	)
	tests := []struct {
		name    string
		after   time.Duration // from the codes' issue
		expired bool
	}{
		{"a moment before", lifetime - time.Nanosecond, false},
		{"at the expiry", lifetime, true},
		{"a minute after", lifetime + time.Minute, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var obs *countingObserver
			h := newHarness(t, harnessOptions{upstream: true, configure: func(c *flow.Config) {
				obs, _ = observed(c)
				c.ExpiresIn = lifetime
				c.Limits = flow.Limits{Off: true}
			}})
			client := h.up.ClientID
			pending, approved, signingIn, looked := h.newCode(deviceIP, client), h.newCode(deviceIP, client), h.newCode(deviceIP, client), h.newCode(deviceIP, client)
			if done := h.approve(personBrowser(), approved["user_code"].(string), nil); !done.isPage("success") {
				t.Fatalf("approve: %d\n%s", done.status, done.body)
			}
			var callback string
			signer := personBrowser()
			h.approve(signer, signingIn["user_code"].(string), func(c string) { callback = c })
			person := personBrowser()
			entry := h.do(person, "", http.MethodGet, "/device", "", "") // the form is filled in late
			csrf := formToken(t, entry.body)

			h.clock.Advance(tc.after)

			// The devices.
			for name, code := range map[string]map[string]any{"pending": pending, "approved": approved} {
				status, out := h.poll(code["device_code"].(string), client)
				switch {
				case tc.expired && (status != http.StatusBadRequest || out["error"] != "expired_token"):
					t.Errorf("the %s code's device: %d %v, want expired_token", name, status, out["error"])
				case !tc.expired && name == "pending" && out["error"] != "authorization_pending":
					t.Errorf("the pending code's device: %d %v, want authorization_pending", status, out)
				case !tc.expired && name == "approved" && (status != http.StatusOK || out["access_token"] == nil):
					t.Errorf("the approved code's device: %d %v, want its tokens", status, out["error"])
				}
			}

			// Back from the upstream.
			done := h.do(signer, "", http.MethodGet, strings.TrimPrefix(callback, h.srv.URL), "", "")
			if tc.expired {
				if done.status != http.StatusBadRequest || !done.isPage("expired") {
					t.Errorf("back from the upstream: %d, want 400 and the expired page\n%s", done.status, done.body)
				}
				d, err := h.store.DeviceByUserCode(context.Background(), normalized(signingIn["user_code"].(string)))
				if err != nil || d.Status != flow.Pending {
					t.Errorf("the code of the late sign-in: %+v %v, want it left pending", d, err)
				}
				if status, out := h.poll(signingIn["device_code"].(string), client); out["error"] != "expired_token" {
					t.Errorf("the late sign-in's device: %d %v, want expired_token", status, out)
				}
			} else if !done.isPage("success") {
				t.Errorf("back from the upstream: %d, want the success page\n%s", done.status, done.body)
			}

			// The person's lookups, by link and by the form opened before.
			code := looked["user_code"].(string)
			lookup := func(typed string) (byLink, byForm answer) {
				byLink = h.do(person, "", http.MethodGet, "/device?code="+url.QueryEscape(typed), "", "")
				form := url.Values{"csrf": {csrf}, "user_code": {typed}, "action": {"lookup"}}
				byForm = h.do(person, "", http.MethodPost, "/device", "application/x-www-form-urlencoded", form.Encode())
				return byLink, byForm
			}
			// At the expiry a lookup fails as a wrong code does (that all
			// wrong codes look alike is TestWrongCodesAllLookAlike's).
			link, form := lookup(code)
			for _, p := range []struct {
				how string
				got answer
			}{{"link", link}, {"form", form}} {
				switch {
				case !tc.expired && !p.got.isPage("confirm"):
					t.Errorf("looking the code up by %s: %d, want the confirmation page", p.how, p.got.status)
				case tc.expired && (p.got.status != http.StatusBadRequest || !p.got.isPage("enter")):
					t.Errorf("looking the code up by %s: %d, want 400 and the entry page, as for a wrong code", p.how, p.got.status)
				}
			}

			wantExpired := 0
			if tc.expired {
				wantExpired = 3 // pending, approved, the late sign-in's
			}
			if got := obs.count(flow.EventExpired); got != wantExpired {
				t.Errorf("expired events: %d, want %d", got, wantExpired)
			}
		})
	}
}
