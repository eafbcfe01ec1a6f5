package flow_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// approveOnce opens the confirmation page in browser b and presses
// Approve, without following the redirect to the upstream.
func (h *harness) approveOnce(b *http.Client, ip, userCode string) answer {
	h.t.Helper()
	b.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	confirm := h.do(b, ip, http.MethodGet, "/device?code="+url.QueryEscape(userCode), "", "")
	if !confirm.isPage("confirm") {
		h.t.Fatalf("confirmation page expected, got %d:\n%s", confirm.status, confirm.body)
	}
	form := url.Values{"csrf": {formToken(h.t, confirm.body)}, "user_code": {userCode}, "action": {"approve"}}
	return h.do(b, ip, http.MethodPost, "/device", "application/x-www-form-urlencoded", form.Encode())
}

// Pressing Approve again and again must not grow the store: a device
// code has at most one sign-in in progress, the last one.
func TestApproveKeepsOneLogin(t *testing.T) {
	h := newHarness(t, harnessOptions{configure: withLimits(flow.Limits{Off: true})})
	code := h.newCode("198.51.100.1", "tv")["user_code"].(string)
	b := personBrowser()
	for i := range 2000 {
		if a := h.approveOnce(b, "192.0.2.1", code); a.status != http.StatusSeeOther {
			t.Fatalf("approve %d: %d\n%s", i, a.status, a.body)
		}
	}
	if n := len(h.pendingVerifiers(t)); n != 1 {
		t.Fatalf("2000 Approves left %d login records, want 1", n)
	}
}

// Approves count against a per-address limit: each starts an upstream
// sign-in.
func TestApproveLimit(t *testing.T) {
	h := newHarness(t, harnessOptions{configure: withLimits(flow.Limits{ApprovesPerIP: 3})})
	code := h.newCode("198.51.100.1", "tv")["user_code"].(string)
	b := personBrowser()
	for i := range 3 {
		if a := h.approveOnce(b, "192.0.2.1", code); a.status != http.StatusSeeOther {
			t.Fatalf("approve %d within the limit: %d", i, a.status)
		}
	}
	a := h.approveOnce(b, "192.0.2.1", code)
	if a.status != http.StatusTooManyRequests || !a.isPage("toomany") || a.header.Get("Retry-After") == "" {
		t.Fatalf("approve past the limit: %d Retry-After=%q", a.status, a.header.Get("Retry-After"))
	}
	if a := h.approveOnce(personBrowser(), "192.0.2.2", code); a.status != http.StatusSeeOther {
		t.Fatalf("another address: %d", a.status)
	}
}

// The Approve limit holds per IPv6 /64, and 4 and 16 times it per /56 and
// /48, as every other limit: a /48 holds 65,536 /64s, and each Approve
// starts an upstream sign-in.
func TestApproveLimitCountsIPv6Prefixes(t *testing.T) {
	const per = 2
	for _, tc := range []struct {
		name     string
		from     []string
		approved int // of per Approves from each
	}{
		{"8 /64s of one /56", addresses("2001:db8:0:%x::1", 8), 4 * per},
		{"24 /56s of one /48", addresses("2001:db8:1:%x00::1", 24), 16 * per},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{configure: func(c *flow.Config) {
				c.Limits = flow.Limits{ApprovesPerIP: per}
				c.CodeNetworks = -1 // one code opened from many /56s
			}})
			code := h.newCode("198.51.100.1", "tv")["user_code"].(string)
			approved := 0
			for _, ip := range tc.from {
				for range per {
					switch a := h.approveOnce(personBrowser(), ip, code); a.status {
					case http.StatusSeeOther:
						approved++
					case http.StatusTooManyRequests:
					default:
						t.Fatalf("approve from %s: %d", ip, a.status)
					}
				}
			}
			if approved != tc.approved {
				t.Fatalf("%d Approves went through, want %d", approved, tc.approved)
			}
		})
	}
}

// Someone who knows the user code of a sign-in in progress cannot end it
// with forged or replayed callbacks: the login is taken only with the
// state it was made with.
func TestForgedCallbacksLeaveTheSignInAlone(t *testing.T) {
	h := newHarness(t, harnessOptions{upstream: true})
	auth := h.newCode("192.0.2.1", h.up.ClientID)
	userCode := strings.ReplaceAll(auth["user_code"].(string), "-", "")
	b := personBrowser()
	var callback string
	h.approve(b, auth["user_code"].(string), func(u string) { callback = u })
	if callback == "" {
		t.Fatal("the IdP did not send the browser back")
	}
	attacker := personBrowser()
	for _, state := range []string{userCode + ".forged", userCode + ".", userCode} {
		a := h.do(attacker, "198.51.100.9", http.MethodGet, "/auth/redirect?code=x&state="+url.QueryEscape(state), "", "")
		if a.status == http.StatusOK {
			t.Fatalf("forged state %q: %d, want an error page", state, a.status)
		}
	}
	if done := h.do(b, "", http.MethodGet, strings.TrimPrefix(callback, h.srv.URL), "", ""); !done.isPage("success") {
		t.Fatalf("the real callback after the forged ones: %d\n%s", done.status, done.body)
	}
	if status, out := h.poll(auth["device_code"].(string), h.up.ClientID); status != http.StatusOK {
		t.Fatalf("device: %d %v", status, out)
	}
}
