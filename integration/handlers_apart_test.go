package integration

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/caddy-device-flow/caddy-device-flow/storage/redisstore/redistest"
)

// Two device_flow sites in one config on one store, each in front of an
// upstream of its own: neither sees the other's codes (Handler.Name). Site
// A is the usual test site; site B lets every client_id in, so what stops
// A's device there is the store, not the allow-list.

func TestSitesApartOnTheDefaultBadgerFolder(t *testing.T) {
	testSitesApart(t, "badger")
}

func TestSitesApartOnOneRedisPrefix(t *testing.T) {
	srv := redistest.Start(t)
	testSitesApart(t, redisStorageWithPrefix(srv.URL, newKeyPrefix()))
}

func testSitesApart(t *testing.T, storage string) {
	upA, upB := startUpstream(t), startUpstream(t)
	siteB := fmt.Sprintf("http://localhost:%d", freePort())
	config := func(extra string) string {
		return siteConfigStorage(t, upA, storage, extra) + secondSite(siteB, upB, storage, extra)
	}
	startCaddy(t, config(""))
	clientID := upA.Config().ClientID
	tv := newDevice(t, clientID, "openid")

	b := newBrowser(t)
	if p := b.get(siteB + "/device?code=" + url.QueryEscape(tv.userCode())); p.status != http.StatusBadRequest || !p.is("enter") {
		t.Fatalf("B's page for A's code: %d, want the entry page saying the code is invalid:\n%s", p.status, p.body)
	}
	entry := b.get(siteB + "/device")
	if p := b.postPage(siteB, "/device", url.Values{"csrf": {entry.csrf(t)}, "user_code": {tv.userCode()}, "action": {"approve"}}); p.status != http.StatusBadRequest || !p.is("enter") {
		t.Fatalf("approving A's code at B: %d %s\n%s", p.status, p.url, p.body)
	}
	if status, out := devicePoll(t, siteB, clientID, tv.deviceCode()); status != http.StatusBadRequest || out["error"] != "invalid_grant" {
		t.Fatalf("A's device code polled at B: %d %v", status, out)
	}
	for site, want := range map[string]int{testSite: http.StatusOK, siteB: http.StatusNotFound} {
		resp, err := http.Get(site + "/device/qr?user_code=" + url.QueryEscape(tv.userCode()))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("QR of A's code at %s: %d, want %d", site, resp.StatusCode, want)
		}
	}

	// A reload that changes only the interval keeps A's pending code.
	startCaddy(t, config("interval 6s"))
	if status, out := tv.poll(); status != http.StatusBadRequest || out["error"] != "authorization_pending" {
		t.Fatalf("A's code after the reload: %d %v", status, out)
	}
	if done := newBrowser(t).approve(tv.userCode()); !done.is("success") {
		t.Fatalf("approve at A: %d\n%s", done.status, done.body)
	}
	if status, tokens := tv.poll(); status != http.StatusOK || tokens["access_token"] == nil {
		t.Fatalf("tokens at A: %d %v", status, tokens)
	}
}

// Two sites whose handlers derive the same identity (same upstream, no
// base_url, no prefix) would share their codes without anyone saying so:
// the config does not load until they are named. The same name shares on
// purpose; different names keep them apart.
func TestSitesOfOneUpstreamMustBeNamed(t *testing.T) {
	up := startUpstream(t)
	storage := "badger " + storeDir(t)
	siteB := fmt.Sprintf("http://localhost:%d", freePort())
	config := func(nameA, nameB string) string {
		return siteConfigStorage(t, up, storage, nameA) + secondSite(siteB, up, storage, nameB)
	}
	caddytest.AssertLoadError(t, config("", ""), "caddyfile", "give each its own `name`")

	clientID := up.Config().ClientID
	for _, tc := range []struct {
		nameA, nameB string
		shared       bool
	}{
		{"name tenant-a", "name tenant-b", false},
		{"name tv", "name tv", true},
	} {
		startCaddy(t, config(tc.nameA, tc.nameB))
		tv := newDevice(t, clientID, "openid")
		status, out := devicePoll(t, siteB, clientID, tv.deviceCode())
		if got := out["error"] == "authorization_pending"; got != tc.shared || status != http.StatusBadRequest {
			t.Fatalf("%s / %s: A's code polled at B: %d %v, want shared=%v", tc.nameA, tc.nameB, status, out, tc.shared)
		}
	}
}

// secondSite is the Caddyfile of site B, in front of up, on storage; extra
// goes into its device_flow block. It lets every client_id in.
func secondSite(site string, up *upstream, storage, extra string) string {
	return fmt.Sprintf(`%s {
	device_flow {
		authorization_endpoint %s
		token_endpoint %s
		storage %s
		%s
	}
}
`, site, up.AuthorizationEndpoint(), up.TokenEndpoint(), storage, extra)
}
