package integration

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/caddy-device-flow/caddy-device-flow/storage/badgerstore"
)

// A config reload mid-flow keeps the pending code: the new config finds the
// database open in the pool, and the old one lets go of it afterwards.
func TestReloadKeepsPendingCode(t *testing.T) {
	up := startUpstream(t)
	dir := storeDir(t)
	startCaddy(t, siteConfigIn(t, up, dir, ""))
	tv := newDevice(t, up.Config().ClientID, "openid")

	// The person's page finds the code pending after each reload; the
	// device polls once, at the end (two polls a moment apart would make
	// the second early).
	b := newBrowser(t)
	for i, extra := range []string{"interval 6s", "expires_in 11m"} { // two reloads, each a real change
		startCaddy(t, siteConfigIn(t, up, dir, extra))
		if p := b.get(tv.auth["verification_uri_complete"].(string)); !p.is("confirm") {
			t.Fatalf("after reload %d: %d, want the confirmation page\n%s", i+1, p.status, p.body)
		}
	}
	if status, out := tv.poll(); status != 400 || out["error"] != "authorization_pending" {
		t.Fatalf("the device after the reloads: %d %v", status, out)
	}
	if done := b.approve(tv.userCode()); done.status != http.StatusOK || !done.is("success") {
		t.Fatalf("approve after reloads: %d\n%s", done.status, done.body)
	}
	if status, out := tv.poll(); status != http.StatusOK {
		t.Fatalf("tokens after reloads: %d %v", status, out)
	}
}

// JSON config works the same as the Caddyfile.
func TestJSONConfig(t *testing.T) {
	up := startUpstream(t)
	cfg := up.Config()
	json := `{
	"admin": {"listen": "localhost:` + strconv.Itoa(adminPort) + `"},
	"apps": {"http": {"servers": {"srv0": {
		"listen": [":` + strconv.Itoa(testPort) + `"],
		"automatic_https": {"disable": true},
		"routes": [{"handle": [
			{"handler": "device_flow",
			 "authorization_endpoint": "` + up.AuthorizationEndpoint() + `",
			 "token_endpoint": "` + up.TokenEndpoint() + `",
			 "token_auth": "post",
			 "storage": {"backend": "badger", "dir": "` + storeDir(t) + `"},
			 "clients": {"` + cfg.ClientID + `": {"name": "Living-room TV", "secret": "` + cfg.ClientSecret + `"}}},
			{"handler": "static_response", "body": "next handler"}
		]}]
	}}}}
}`
	tester := startCaddyJSON(t, json)
	tv := newDevice(t, cfg.ClientID, "openid")
	if done := newBrowser(t).approve(tv.userCode()); !done.is("success") {
		t.Fatalf("approve: %d\n%s", done.status, done.body)
	}
	if status, out := tv.poll(); status != http.StatusOK {
		t.Fatalf("tokens: %d %v", status, out)
	}
	tester.AssertGetResponse(testSite+"/elsewhere", 200, "next handler")
}

// A config whose Badger folder another process holds fails to load,
// naming the folder: the database opens when the config starts, and a
// start that fails is a load that fails.
func TestFolderInUseFailsTheLoad(t *testing.T) {
	up := startUpstream(t)
	dir := storeDir(t)
	other, err := badgerstore.Open(badgerstore.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	caddytest.AssertLoadError(t, siteConfigIn(t, up, dir, ""), "caddyfile", "is in use by another process")
}

// A config that no longer uses a folder lets go of its database: another
// process may open it. (That its counters and codes are still there is
// flow's TestGuessCountersSurviveRestart and the storetest suite.)
func TestReloadLetsGoOfTheOldFolder(t *testing.T) {
	up := startUpstream(t)
	dir := storeDir(t)
	startCaddy(t, siteConfigIn(t, up, dir, ""))
	startCaddy(t, siteConfig(t, up, "")) // another folder
	db, err := badgerstore.Open(badgerstore.Options{Dir: dir})
	if err != nil {
		t.Fatalf("the first database is still open: %v", err)
	}
	db.Close()
}
