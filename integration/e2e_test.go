package integration

import (
	"net/http"
	"strings"
	"testing"
)

// The Caddy-level smoke test: a device code from the module behind Caddy,
// on Caddy's origin; a person approves through the upstream; the device
// gets its tokens. What each step does in detail is flow's tests'.
func TestFullFlow(t *testing.T) {
	up := startUpstream(t)
	startCaddy(t, siteConfig(t, up, ""))

	tv := newDevice(t, up.Config().ClientID, "openid profile")
	if tv.auth["verification_uri"] != testSite+"/device" {
		t.Fatalf("verification_uri %v, want %s/device", tv.auth["verification_uri"], testSite)
	}
	done := newBrowser(t).approve(tv.userCode())
	if done.status != http.StatusOK || !done.is("success") {
		t.Fatalf("after the upstream: %d %s\n%s", done.status, done.url, done.body)
	}
	status, tokens := tv.poll()
	if status != http.StatusOK {
		t.Fatalf("poll after approval: %d %v", status, tokens)
	}
	for _, field := range []string{"access_token", "id_token", "refresh_token", "token_type"} {
		if s, _ := tokens[field].(string); s == "" {
			t.Errorf("%s missing from the token response %v", field, tokens)
		}
	}
}

// lastRedirect approves in browser b and returns the callback URL the
// upstream redirects to, without following it.
func lastRedirect(t *testing.T, b *browser, tv *device) string {
	t.Helper()
	var loc string
	b.client.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if strings.HasSuffix(req.URL.Path, "/auth/redirect") {
			loc = req.URL.String()
			return http.ErrUseLastResponse
		}
		return nil
	}
	b.approve(tv.userCode())
	if loc == "" {
		t.Fatal("the upstream did not redirect back")
	}
	return loc
}

// The module answers its own paths and hands every other request to the
// next handler; a wrong method on one of its paths is still its own to
// answer (flow's TestBadInputEverywhere has what it says).
func TestOtherPathsReachTheNextHandler(t *testing.T) {
	up := startUpstream(t)
	tester := startCaddy(t, siteConfig(t, up, ""))
	tester.AssertGetResponse(testSite+"/somewhere/else", 200, "next handler")
	resp, err := http.Get(testSite + "/device/code")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET /device/code: %d, want the module's 405", resp.StatusCode)
	}
}
