package integration

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/caddy-device-flow/caddy-device-flow/internal/testgeoip"
)

// Networks are simulated as a proxy would report them: Caddy trusts the
// loopback proxy, and each request names its client in X-Forwarded-For.
const trustLoopback = "\tservers {\n\t\ttrusted_proxies static 127.0.0.1/32 ::1/128\n\t}"

// forwardedFor makes every request of a client claim the address ip.
type forwardedFor struct {
	ip   string
	base http.RoundTripper
}

func (f forwardedFor) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Forwarded-For", f.ip)
	return f.base.RoundTrip(r)
}

// newDeviceFrom is newDevice from the address ip.
func newDeviceFrom(t *testing.T, clientID, scope, ip string) *device {
	t.Helper()
	c := &http.Client{Transport: forwardedFor{ip, http.DefaultTransport}, Timeout: 10 * time.Second}
	resp, err := c.PostForm(testSite+"/device/code", url.Values{"client_id": {clientID}, "scope": {scope}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("device code from %s: %d %v", ip, resp.StatusCode, err)
	}
	return &device{t: t, clientID: clientID, auth: out}
}

// newBrowserFrom is a person's browser at the address ip.
func newBrowserFrom(t *testing.T, ip string) *browser {
	b := newBrowser(t)
	b.client.Transport = forwardedFor{ip, http.DefaultTransport}
	return b
}

// Proximity as Caddy runs it: behind a trusted proxy the check compares
// the forwarded addresses, placed by the Caddyfile's geoip database, so a
// person in Paris is refused Approve for a device in Berlin (proximity
// require). Without trusted_proxies the header is ignored (both sides are
// the proxy's loopback address), so it cannot be used to fake anything.
// What the check does is flow's TestProximity and TestProximityWithGeoIP.
func TestProximityBehindTrustedProxy(t *testing.T) {
	up := startUpstream(t)
	clientID := up.Config().ClientID
	mmdb := testgeoip.Cities(t, t.TempDir())
	site := siteConfig(t, up, "geoip "+mmdb+"\n\t\tproximity require")

	startCaddy(t, withGlobalOptions(site, trustLoopback))
	tv := newDeviceFrom(t, clientID, "openid", "198.51.100.7")
	paris := newBrowserFrom(t, "203.0.113.9")
	confirm := paris.get(tv.auth["verification_uri_complete"].(string))
	for _, want := range []string{"198.51.100.x", "Berlin, Germany", `id="far"`, "203.0.113.x (Paris, France)"} {
		if !strings.Contains(confirm.body, want) {
			t.Errorf("confirmation page from Paris does not show %q", want)
		}
	}
	refused := paris.post("/device", url.Values{"csrf": {confirm.csrf(t)}, "user_code": {tv.userCode()}, "action": {"approve"}})
	if refused.status != http.StatusForbidden || !refused.is("toofar") {
		t.Fatalf("Approve from Paris: %d, want 403 and the toofar page", refused.status)
	}

	startCaddy(t, site) // no trusted proxies: X-Forwarded-For is not believed
	tv = newDeviceFrom(t, clientID, "openid", "198.51.100.7")
	if page := newBrowserFrom(t, "203.0.113.9").approve(tv.userCode()); !page.is("success") {
		t.Fatalf("without trusted_proxies a claimed address changed the outcome: %d", page.status)
	}
}

// A missing or corrupt database fails the load, naming the path, and so
// does `caddy validate` (caddy.Validate is what it runs).
func TestGeoIPLoadErrors(t *testing.T) {
	up := startUpstream(t)
	dir := t.TempDir()
	good, err := os.ReadFile(testgeoip.Cities(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	corrupt := filepath.Join(dir, "corrupt.mmdb")
	if err := os.WriteFile(corrupt, append(make([]byte, 0, len(good)), good[len(good)/2:]...), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, path, want string }{
		{"missing", filepath.Join(dir, "GeoLite2-City.mmdb"), "no such file or directory"},
		{"corrupt", corrupt, "not a MaxMind DB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			config := siteConfig(t, up, "geoip "+tc.path)
			caddytest.AssertLoadError(t, config, "caddyfile", tc.path)
			adapted, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(config), nil)
			if err != nil {
				t.Fatal(err)
			}
			var cfg caddy.Config
			if err := json.Unmarshal(adapted, &cfg); err != nil {
				t.Fatal(err)
			}
			err = caddy.Validate(&cfg)
			if err == nil || !strings.Contains(err.Error(), tc.path) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("caddy validate: %v, want it to name %s and say %q", err, tc.path, tc.want)
			}
		})
	}
}
