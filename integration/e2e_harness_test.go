// Package integration runs the device_flow module end to end: Caddy
// in-process (caddytest), or as a process of its own, in front of mockoidc,
// a real OpenID Connect server library that checks client credentials and
// PKCE. It uses the module only as Caddy does, through its configuration.
package integration

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddytest"

	_ "github.com/caddy-device-flow/caddy-device-flow" // the device_flow handler, as a Caddy build has it
	"github.com/caddy-device-flow/caddy-device-flow/internal/testupstream"
)

// Ports are picked free at start, so several test processes (developers
// running the package at once) do not collide.
var (
	testPort  int
	adminPort int
	testSite  string
)

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// upstream is the test's authorization server (mockoidc).
type upstream = testupstream.Upstream

func startUpstream(t *testing.T) *upstream { return testupstream.Start(t) }

// siteConfig is the Caddyfile of the site under test; extra goes into the
// device_flow block.
func siteConfig(t *testing.T, up *upstream, extra string) string {
	return siteConfigIn(t, up, storeDir(t), extra)
}

// siteConfigIn is siteConfig with the Badger database in dir, for tests
// that load several configs on one database.
func siteConfigIn(t *testing.T, up *upstream, dir, extra string) string {
	return siteConfigStorage(t, up, "badger "+dir, extra)
}

// siteConfigStorage is siteConfig with another store: storage is the rest
// of the storage line ("redis redis://127.0.0.1:6379 { ... }").
func siteConfigStorage(t *testing.T, up *upstream, storage, extra string) string {
	cfg := up.Config()
	endpoints := "authorization_endpoint " + up.AuthorizationEndpoint() + "\n\t\ttoken_endpoint " + up.TokenEndpoint()
	return siteCaddyfile(endpoints, storage, cfg.ClientID, cfg.ClientSecret, "scopes openid profile email", extra)
}

// siteCaddyfile is the test site's Caddyfile: upstream names the upstream
// (endpoints or issuer), clientExtra goes into the client block and extra
// into the device_flow block.
func siteCaddyfile(upstream, storage, clientID, secret, clientExtra, extra string) string {
	return fmt.Sprintf(`{
	admin localhost:%d
	http_port %d
	auto_https off
	skip_install_trust
}
%s {
	device_flow {
		%s
		token_auth post
		storage %s
		client %s {
			name "Living-room TV"
			secret %s
			%s
		}
		%s
	}
	respond "next handler" 200
}
`, adminPort, testPort, testSite, upstream, storage, clientID, secret, clientExtra, extra)
}

// testData holds every test's database. Caddy keeps the last config (and
// its open database) running after its test ends, so the folders go only
// when the whole package is done (TestMain).
var testData string

func TestMain(m *testing.M) {
	var err error
	if testData, err = os.MkdirTemp("", "device-flow-test-"); err != nil {
		panic(err)
	}
	// Caddy's data directory, where the default Badger folder is.
	os.Setenv("XDG_DATA_HOME", filepath.Join(testData, "data"))
	// Every test loads a new config: a connection kept alive to the
	// previous config's server may be closed under the next request (a
	// POST, which is not retried: EOF). Fresh connections each time.
	http.DefaultTransport.(*http.Transport).DisableKeepAlives = true
	testPort, adminPort = freePort(), freePort()
	testSite = fmt.Sprintf("http://localhost:%d", testPort)
	caddytest.Default.AdminPort = adminPort
	code := m.Run()
	caddy.Stop()
	os.RemoveAll(testData)
	os.Exit(code)
}

// storeDir is a fresh database folder for one test.
func storeDir(t *testing.T) string {
	dir, err := os.MkdirTemp(testData, strings.ReplaceAll(t.Name(), "/", "_")+"-")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// startCaddy loads a Caddyfile into the test process's Caddy.
func startCaddy(t *testing.T, config string) *caddytest.Tester {
	t.Helper()
	return startCaddyAs(t, config, "caddyfile")
}

// startCaddyJSON loads a JSON config.
func startCaddyJSON(t *testing.T, config string) *caddytest.Tester {
	t.Helper()
	return startCaddyAs(t, config, "json")
}

func startCaddyAs(t *testing.T, config, adapter string) *caddytest.Tester {
	t.Helper()
	tester := caddytest.NewTester(t)
	tester.InitServer(config, adapter)
	if t.Failed() {
		t.FailNow()
	}
	return tester
}

// device is a TV: it asks for a code and polls.
type device struct {
	t        *testing.T
	clientID string
	auth     map[string]any
}

func postForm(t *testing.T, endpoint string, form url.Values) (int, map[string]any, http.Header) {
	t.Helper()
	return postFormAt(t, testSite, endpoint, form)
}

// postFormTo posts to another site (a Caddy process of a test's own).
func postFormTo(t *testing.T, site, endpoint string, form map[string]string) (int, map[string]any) {
	t.Helper()
	v := url.Values{}
	for k, x := range form {
		v.Set(k, x)
	}
	status, out, _ := postFormAt(t, site, endpoint, v)
	return status, out
}

func postFormAt(t *testing.T, site, endpoint string, form url.Values) (int, map[string]any, http.Header) {
	t.Helper()
	resp, err := http.Post(site+endpoint, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("%s answered %d with non-JSON %q", endpoint, resp.StatusCode, body)
	}
	return resp.StatusCode, out, resp.Header
}

// newDevice asks for a device code.
func newDevice(t *testing.T, clientID, scope string) *device {
	t.Helper()
	status, out, _ := postForm(t, "/device/code", url.Values{"client_id": {clientID}, "scope": {scope}})
	if status != http.StatusOK {
		t.Fatalf("device code: %d %v", status, out)
	}
	return &device{t: t, clientID: clientID, auth: out}
}

func (d *device) deviceCode() string { return d.auth["device_code"].(string) }
func (d *device) userCode() string   { return d.auth["user_code"].(string) }

// poll asks for the tokens once and returns the status and JSON answer.
// Caddy runs on the real clock and tests wait for nothing: a poll of an
// approved or denied code is answered at once, whatever the interval; a
// pending code polled again a moment later is early (one immediate repeat
// is forgiven as a client's retry, then slow_down). Expiry and the
// interval need time to pass: flow tests them with an injected Config.Now.
func (d *device) poll() (int, map[string]any) {
	d.t.Helper()
	status, out, _ := postForm(d.t, "/device/token", url.Values{
		"grant_type":  {"urn:ietf:params:oauth:grant-type:device_code"},
		"device_code": {d.deviceCode()},
		"client_id":   {d.clientID},
	})
	return status, out
}

// postPage posts a form from the browser to a site of the test's choosing.
func (b *browser) postPage(site, path string, form url.Values) page {
	b.t.Helper()
	resp, err := b.client.PostForm(site+path, form)
	if err != nil {
		b.t.Fatal(err)
	}
	return readPage(b.t, resp)
}

// devicePoll is one device_code poll at site.
func devicePoll(t *testing.T, site, clientID, deviceCode string) (int, map[string]any) {
	return postFormTo(t, site, "/device/token", map[string]string{
		"grant_type": "urn:ietf:params:oauth:grant-type:device_code", "device_code": deviceCode, "client_id": clientID,
	})
}

// browser is a person's browser: cookies, forms, redirects followed.
type browser struct {
	t      *testing.T
	client *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, client: &http.Client{Jar: jar, Timeout: 10 * time.Second}}
}

type page struct {
	status int
	url    string
	body   string
}

func (b *browser) get(u string) page {
	b.t.Helper()
	resp, err := b.client.Get(u)
	if err != nil {
		b.t.Fatal(err)
	}
	return readPage(b.t, resp)
}

func (b *browser) post(path string, form url.Values) page {
	b.t.Helper()
	resp, err := b.client.PostForm(testSite+path, form)
	if err != nil {
		b.t.Fatal(err)
	}
	return readPage(b.t, resp)
}

func readPage(t *testing.T, resp *http.Response) page {
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return page{status: resp.StatusCode, url: resp.Request.URL.String(), body: string(body)}
}

var csrfField = regexp.MustCompile(`name="csrf"\s+value="([^"]+)"|value="([^"]+)"\s+name="csrf"`)

// csrf reads the form's CSRF token from a page.
func (p page) csrf(t *testing.T) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no csrf field on page %s:\n%s", p.url, p.body)
	}
	return html.UnescapeString(m[1] + m[2])
}

// page names are recognised by a data-page attribute on <body>.
func (p page) is(name string) bool {
	return strings.Contains(p.body, `data-page="`+name+`"`)
}

// approve walks a person through: entry page, code typed in lower case
// without the dash, confirmation, upstream, back to the callback.
func (b *browser) approve(userCode string) page {
	b.t.Helper()
	entry := b.get(testSite + "/device")
	if !entry.is("enter") {
		b.t.Fatalf("entry page expected, got %d:\n%s", entry.status, entry.body)
	}
	typed := strings.ToLower(strings.ReplaceAll(userCode, "-", ""))
	confirm := b.post("/device", url.Values{"csrf": {entry.csrf(b.t)}, "user_code": {typed}, "action": {"lookup"}})
	if !confirm.is("confirm") {
		b.t.Fatalf("confirmation page expected, got %d:\n%s", confirm.status, confirm.body)
	}
	return b.post("/device", url.Values{"csrf": {confirm.csrf(b.t)}, "user_code": {userCode}, "action": {"approve"}})
}
