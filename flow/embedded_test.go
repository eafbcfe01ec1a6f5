package flow_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// fetched sends a GET from ip with the Fetch Metadata a browser would add.
func (h *harness) fetched(ip, path, site, dest string) answer {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodGet, h.srv.URL+path, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set(testIPHeader, ip)
	if site != "" {
		req.Header.Set("Sec-Fetch-Site", site)
		req.Header.Set("Sec-Fetch-Dest", dest)
	}
	resp, err := http.DefaultClient.Do(req)
	return read(h.t, resp, err)
}

// Every answer of the pages, the callback and the QR images says
// Cross-Origin-Resource-Policy: same-origin, so another site's page that
// loads them in its visitors' browsers (an <img> of /device/qr answers
// only for live codes) gets nothing to look at.
func TestAnswersAreSameOriginResources(t *testing.T) {
	h := newHarness(t, harnessOptions{upstream: true})
	code := h.newCode("198.51.100.1", h.up.ClientID)["user_code"].(string)
	for _, tc := range []struct {
		name string
		a    answer
		want string
	}{
		{"QR of a live code", h.qr("192.0.2.1", "", code, "png"), "same-origin"},
		{"QR of an unknown code", h.qr("192.0.2.1", "", wrongCode, "png"), "same-origin"},
		{"confirmation page", h.lookup("192.0.2.1", code), "same-origin"},
		{"entry page", h.lookup("192.0.2.1", ""), "same-origin"},
		{"callback", h.do(http.DefaultClient, "192.0.2.1", http.MethodGet, "/auth/redirect?state=x.y", "", ""), "same-origin"},
		{"a GET of the token endpoint", h.do(http.DefaultClient, "192.0.2.1", http.MethodGet, "/device/token", "", ""), ""}, // POST only
		{"metadata", h.do(http.DefaultClient, "192.0.2.1", http.MethodGet, "/.well-known/oauth-authorization-server", "", ""), ""},
	} {
		if got := tc.a.header.Get("Cross-Origin-Resource-Policy"); got != tc.want {
			t.Errorf("%s (%d): Cross-Origin-Resource-Policy %q, want %q", tc.name, tc.a.status, got, tc.want)
		}
	}
}

// Another site's page making its visitors' browsers load codes as images,
// scripts or frames gets them refused before any lookup, so it spends
// none of the visitor's guesses; a person following a link or scanning a
// QR code from anywhere (a navigation) still gets the page.
func TestCodesLoadedByOtherSitesAreNotLookedUp(t *testing.T) {
	h := newHarness(t, harnessOptions{configure: withLimits(flow.Limits{GuessesPerIP: 3})})
	code := h.newCode("198.51.100.1", "tv")["user_code"].(string)
	const visitor = "192.0.2.1"
	for _, tc := range []struct{ path, site, dest string }{
		{"/device?code=" + wrongCode, "cross-site", "image"},
		{"/device?code=" + wrongCode, "cross-site", "script"},
		{"/device?code=" + wrongCode, "same-site", "iframe"},
		{"/device?code=" + wrongCode, "cross-site", "empty"},
		{"/device/qr?user_code=" + wrongCode, "cross-site", "image"},
		{"/device/qr?user_code=" + wrongCode, "same-site", "image"},
		{"/auth/redirect?code=x&state=BCDFGHJK.forged", "cross-site", "image"},
	} {
		for range 4 { // more than guess_limit
			if a := h.fetched(visitor, tc.path, tc.site, tc.dest); a.status != http.StatusForbidden {
				t.Fatalf("%s loaded as %s by a %s page: %d, want 403", tc.path, tc.dest, tc.site, a.status)
			}
		}
	}
	for _, tc := range []struct {
		name             string
		path, site, dest string
		want             int
	}{
		{"a link from another site", "/device?code=" + url.QueryEscape(code), "cross-site", "document", http.StatusOK},
		{"a scanned QR code", "/device?code=" + url.QueryEscape(code), "none", "document", http.StatusOK},
		{"this site's page showing the image", "/device/qr?user_code=" + url.QueryEscape(code), "same-origin", "image", http.StatusOK},
		{"a device, no Fetch Metadata", "/device/qr?user_code=" + url.QueryEscape(code), "", "", http.StatusOK},
		{"a wrong code typed by the visitor", "/device?code=" + wrongCode, "same-origin", "document", http.StatusBadRequest},
	} {
		if a := h.fetched(visitor, tc.path, tc.site, tc.dest); a.status != tc.want {
			t.Errorf("%s: %d, want %d\n%s", tc.name, a.status, tc.want, a.body)
		}
	}
}
