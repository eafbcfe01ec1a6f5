package integration

import (
	"fmt"
	"net/http"
	"testing"
)

// kill -9 mid-flow loses no pending code: Badger's write-ahead log reaches
// the page cache before the device gets its answer.
func TestKill9KeepsPendingCode(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the caddy binary")
	}
	up := startUpstream(t)
	port := freePort()
	site := fmt.Sprintf("http://127.0.0.1:%d", port)
	caddyfile := instanceConfig(site, up, "badger "+storeDir(t))

	first := startCaddyProcess(t, caddyfile, site+"/device")
	const devices = 20
	codes := make([]string, devices)
	for i := range codes {
		status, out := postFormTo(t, site, "/device/code", map[string]string{"client_id": up.Config().ClientID, "scope": "openid"})
		if status != http.StatusOK {
			t.Fatalf("device code: %d %v", status, out)
		}
		codes[i] = out["device_code"].(string)
	}
	first.kill()

	startCaddyProcess(t, caddyfile, site+"/device")
	// Each code's first poll is never early, so no waiting is needed.
	for i, code := range codes {
		status, out := postFormTo(t, site, "/device/token", map[string]string{
			"grant_type": "urn:ietf:params:oauth:grant-type:device_code", "device_code": code, "client_id": up.Config().ClientID,
		})
		if status != 400 || out["error"] != "authorization_pending" {
			t.Fatalf("device %d after kill -9: %d %v", i, status, out)
		}
	}
}
