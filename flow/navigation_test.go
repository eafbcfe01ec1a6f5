package flow_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// navigated sends a GET from ip as a browser navigation with the given
// Fetch Metadata (Sec-Fetch-Dest: document); user says whether it came
// from a person's click (Sec-Fetch-User: ?1), purpose is Sec-Purpose.
func (h *harness) navigated(ip, path, site string, user bool, purpose string) answer {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodGet, h.srv.URL+path, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set(testIPHeader, ip)
	req.Header.Set("Sec-Fetch-Site", site)
	req.Header.Set("Sec-Fetch-Mode", "navigate")
	req.Header.Set("Sec-Fetch-Dest", "document")
	if user {
		req.Header.Set("Sec-Fetch-User", "?1")
	}
	if purpose != "" {
		req.Header.Set("Sec-Purpose", purpose)
	}
	resp, err := http.DefaultClient.Do(req)
	return read(h.t, resp, err)
}

// Red team: another site's page need not embed a code to spend its
// visitor's guesses. It can navigate: a popup it opened and keeps
// sending to /device?code=<wrong> (window.open once, then w.location =
// … again and again, no click needed after the first), a speculation-
// rules prefetch of such links (no click at all), or a chain of
// redirects. A browser marks each of those Sec-Fetch-Site: cross-site,
// Sec-Fetch-Dest: document, and without Sec-Fetch-User: ?1, since no
// person asked for them. Each was looked up and counted as a wrong code
// against the visitor's address, so a page visited once shuts its
// visitor (and everyone behind their NAT) out for the rest of the
// window: the person then typing or scanning a right code is refused.
func TestOtherSitesNavigationsDoNotSpendTheVisitorsGuesses(t *testing.T) {
	for _, tc := range []struct {
		name, path, purpose string
	}{
		{"popup sent to wrong codes", "/device?code=" + wrongCode, ""},
		{"speculation-rules prefetch of wrong codes", "/device?code=" + wrongCode, "prefetch"},
		{"popup sent to forged callbacks", "/auth/redirect?code=x&state=BCDFGHJK.forged", ""},
		{"popup sent to QR images of wrong codes", "/device/qr?user_code=" + wrongCode, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{configure: withLimits(flow.Limits{GuessesPerIP: 3})})
			code := h.newCode("198.51.100.1", "tv")["user_code"].(string)
			const visitor = "192.0.2.1"
			for range 5 { // more than guess_limit
				h.navigated(visitor, tc.path, "cross-site", false, tc.purpose)
			}
			// The visitor then scans the device's QR code (a navigation
			// the browser marks Sec-Fetch-Site: none).
			if a := h.navigated(visitor, "/device?code="+url.QueryEscape(code), "none", true, ""); !a.isPage("confirm") {
				t.Fatalf("the visitor opening a right code after another site's page navigated: %d, want the confirmation page\n%s", a.status, a.body)
			}
		})
	}
}

// What still works: a person following a link from another site (a click:
// Sec-Fetch-User: ?1) gets the code looked up, right or wrong; another
// site's navigation without a click gets the code on the entry page, for
// the person to confirm with one press, and nothing is counted.
func TestOtherSitesLinksStillWork(t *testing.T) {
	h := newHarness(t, harnessOptions{configure: withLimits(flow.Limits{GuessesPerIP: 3})})
	code := h.newCode("198.51.100.1", "tv")["user_code"].(string)
	const visitor = "192.0.2.2"
	if a := h.navigated(visitor, "/device?code="+url.QueryEscape(code), "cross-site", true, ""); !a.isPage("confirm") {
		t.Fatalf("a link clicked on another site: %d\n%s", a.status, a.body)
	}
	if a := h.navigated(visitor, "/device?code="+wrongCode, "cross-site", true, ""); a.status != http.StatusBadRequest {
		t.Fatalf("a link with a wrong code clicked on another site: %d", a.status)
	}
	a := h.navigated(visitor, "/device?code="+url.QueryEscape(code), "same-site", false, "")
	if a.status != http.StatusOK || !a.isPage("enter") {
		t.Fatalf("another site's navigation without a click: %d, want the entry page\n%s", a.status, a.body)
	}
}
