package flow_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// lockedPage is how the person is told that a code was locked.
func lockedPage(a answer) bool {
	return a.status == http.StatusForbidden && a.isPage("error") && strings.Contains(a.body, "opened from too many different places")
}

// code_networks: a code opened from more networks than allowed is locked.
// It can no longer be approved, its device hears access_denied, and
// whoever opens it next is told why. A network is an IPv4 /24 or an IPv6
// /56; a QR image is the device's, not a person's, and does not count.
func TestCodeNetworks(t *testing.T) {
	type open struct {
		ip string
		qr bool // the QR image instead of the page
	}
	pages := func(ips ...string) []open {
		var out []open
		for _, ip := range ips {
			out = append(out, open{ip: ip})
		}
		return out
	}
	var sameNetwork, manyNetworks, moreNetworks, reloads, qrs []open
	for i := range 10 {
		sameNetwork = append(sameNetwork, open{ip: fmt.Sprintf("192.0.2.%d", 10+i)})
		manyNetworks = append(manyNetworks, open{ip: fmt.Sprintf("198.51.%d.1", i)})
		reloads = append(reloads, open{ip: "192.0.2.1"})
		qrs = append(qrs, open{ip: fmt.Sprintf("203.0.%d.1", i), qr: true})
	}
	for i := range 20 {
		moreNetworks = append(moreNetworks, open{ip: fmt.Sprintf("198.51.%d.1", i)})
	}
	tests := []struct {
		name     string
		limit    int // Config.CodeNetworks
		opens    []open
		lockedAt int // the open that locks the code; -1: none does
		opened   int // code_opened audit events: one per network new to the code
	}{
		{"three networks pass, the fourth locks (default)", 0,
			pages("192.0.2.1", "198.51.100.1", "203.0.113.1", "100.64.0.1", "192.0.2.1"), 3, 3},
		{"one network, many addresses", 0, sameNetwork, -1, 1},
		{"reloads", 0, reloads, -1, 1},
		{"IPv6 counts by /56", 0,
			pages("2001:db8:0:1::1", "2001:db8:0:2::1", "2001:db8:0:ff::1", "2001:db8:0:100::1", "2001:db8:0:200::1", "2001:db8:0:300::1"), 5, 3},
		{"IPv4-mapped IPv6 is its IPv4 network", 1, pages("192.0.2.1", "::ffff:192.0.2.2", "192.0.3.1"), 2, 1},
		{"code_networks 1", 1, pages("192.0.2.1", "192.0.2.99", "198.51.100.1"), 2, 1},
		{"off", -1, manyNetworks, -1, 10},
		{"off, reloads", -1, reloads, -1, 1},
		{"off keeps 16 networks", -1, moreNetworks, -1, 16},
		{"QR images do not count", 0, append(qrs, pages("192.0.2.1")...), -1, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var (
				obs   *countingObserver
				audit *observer.ObservedLogs
			)
			h := newHarness(t, harnessOptions{configure: func(c *flow.Config) {
				obs, audit = observed(c)
				c.CodeNetworks = tc.limit
				c.Limits = flow.Limits{Off: true}
			}})
			auth := h.newCode("192.0.2.250", "tv")
			userCode := auth["user_code"].(string)
			for i, o := range tc.opens {
				if o.qr {
					a := h.do(http.DefaultClient, o.ip, http.MethodGet, "/device/qr?user_code="+url.QueryEscape(userCode), "", "")
					if a.status != http.StatusOK {
						t.Fatalf("QR %d from %s: %d %s", i, o.ip, a.status, a.body)
					}
					continue
				}
				a := h.openFrom(http.DefaultClient, o.ip, userCode)
				locked := tc.lockedAt >= 0 && i >= tc.lockedAt
				if locked != lockedPage(a) || !locked && !a.isPage("confirm") {
					t.Fatalf("open %d from %s: %d, locked page %v, want locked %v:\n%s", i, o.ip, a.status, lockedPage(a), locked, a.body)
				}
			}
			a := h.pollFrom("192.0.2.250", auth["device_code"].(string), "tv")
			out := a.json(t)
			wantLocks := 0
			if tc.lockedAt >= 0 {
				wantLocks = 1
				if out["error"] != "access_denied" || out["error_description"] != flow.LockedReason {
					t.Errorf("the device of a locked code heard %d %v, want access_denied", a.status, out)
				}
				// Neither an Approve nor a Deny goes through any more.
				b := personBrowser()
				b.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
				csrf := formToken(t, h.do(b, "192.0.2.1", http.MethodGet, "/device", "", "").body)
				for _, action := range []string{"approve", "deny"} {
					form := url.Values{"csrf": {csrf}, "user_code": {userCode}, "action": {action}}
					if a := h.do(b, "192.0.2.1", http.MethodPost, "/device", "application/x-www-form-urlencoded", form.Encode()); !lockedPage(a) {
						t.Errorf("%s of a locked code: %d, want the locked page:\n%s", action, a.status, a.body)
					}
				}
			} else if out["error"] != "authorization_pending" {
				t.Errorf("device: %d %v, want authorization_pending", a.status, out)
			}
			if n := len(auditEvents(audit, flow.AuditCodeOpened)); n != tc.opened {
				t.Errorf("%d code_opened audit events, want %d: one per network new to the code", n, tc.opened)
			}
			if n := obs.count(flow.EventCodeLocked); n != wantLocks {
				t.Errorf("%d code_locked events counted, want %d", n, wantLocks)
			}
			locks := auditEvents(audit, flow.AuditCodeLocked)
			if len(locks) != wantLocks {
				t.Fatalf("%d code_locked audit events, want %d", len(locks), wantLocks)
			}
			if wantLocks == 1 {
				f := locks[0].ContextMap()
				if f["user_code"] != userCode || f["device_ip"] != "192.0.2.250" || f["person_ip"] != tc.opens[tc.lockedAt].ip {
					t.Errorf("code_locked fields %v", f)
				}
				limit := tc.limit
				if limit == 0 {
					limit = flow.DefaultCodeNetworks
				}
				if nets, _ := f["networks"].([]any); len(nets) != limit+1 {
					t.Errorf("code_locked networks %v", f["networks"])
				}
			}
		})
	}
}

// A person who pressed Approve before the code was locked cannot finish:
// the callback finds the code no longer pending, and the device is told
// access_denied, not given tokens.
func TestLockedCodeCannotBeApproved(t *testing.T) {
	h := newHarness(t, harnessOptions{upstream: true})
	auth := h.newCode("192.0.2.250", h.up.ClientID)
	userCode := auth["user_code"].(string)
	var callback string
	approver := personBrowser()
	h.approve(approver, userCode, func(u string) { callback = u }) // from 127.0.0.1: one network
	if callback == "" {
		t.Fatal("the IdP did not send the browser back")
	}
	for i, ip := range []string{"198.51.100.1", "203.0.113.1", "100.64.0.1"} {
		if a := h.openFrom(http.DefaultClient, ip, userCode); lockedPage(a) != (i == 2) {
			t.Fatalf("open from %s: %d", ip, a.status)
		}
	}
	if done := h.do(approver, "", http.MethodGet, strings.TrimPrefix(callback, h.srv.URL), "", ""); !done.isPage("expired") {
		t.Fatalf("the sign-in of a locked code: %d, want the expired page:\n%s", done.status, done.body)
	}
	if a := h.pollFrom("192.0.2.250", auth["device_code"].(string), h.up.ClientID); a.json(t)["error"] != "access_denied" {
		t.Fatalf("device: %d %s, want access_denied", a.status, a.body)
	}
}
