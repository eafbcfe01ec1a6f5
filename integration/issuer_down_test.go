package integration

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"testing"
	"time"
)

// An issuer that is down is an outage, not a broken config: Caddy starts,
// the endpoints answer 503 until the metadata is read in the background,
// and then flows work without a reload.

// waitForIssuer waits until /device/code stops answering 503.
func waitForIssuer(t *testing.T, clientID string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		status, out, _ := postForm(t, "/device/code", url.Values{"client_id": {clientID}})
		switch {
		case status == http.StatusOK:
			return
		case status != http.StatusServiceUnavailable:
			t.Fatalf("device code: %d %v", status, out)
		case time.Now().After(deadline):
			t.Fatal("still 503 long after the issuer came up")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// signIn runs a whole flow: code, approval at the upstream, tokens.
func signIn(t *testing.T, clientID string) {
	t.Helper()
	tv := newDevice(t, clientID, "openid")
	if done := newBrowser(t).approve(tv.userCode()); !done.is("success") {
		t.Fatalf("approve: %d\n%s", done.status, done.body)
	}
	if status, tokens := tv.poll(); status != http.StatusOK || tokens["access_token"] == nil {
		t.Fatalf("poll: %d %v", status, tokens)
	}
}

// The IdP behind the same Caddy (auth.example.com { reverse_proxy
// keycloak:8080 }) is not listening while the device site is provisioned.
// The stand-in site serves metadata naming itself, as Keycloak behind a
// proxy does, and proxies the rest to mockoidc.
func TestIssuerServedBySameCaddy(t *testing.T) {
	up := startUpstream(t)
	idp := fmt.Sprintf("http://127.0.0.1:%d", freePort())
	metadata := fmt.Sprintf(`{"issuer":"%[1]s/oidc","authorization_endpoint":"%[1]s/oidc/authorize","token_endpoint":"%[1]s/oidc/token"}`, idp)
	config := issuerSiteConfig(t, idp+"/oidc", up.ClientID, up.ClientSecret) + fmt.Sprintf(`
%s {
	handle /oidc/.well-known/openid-configuration {
		header Content-Type application/json
		respond %s 200
	}
	reverse_proxy %s
}
`, idp, "`"+metadata+"`", strings.TrimPrefix(up.Addr(), "http://"))
	startCaddy(t, config)

	waitForIssuer(t, up.ClientID)
	signIn(t, up.ClientID)
}

// caddy validate provisions the config: an issuer that does not answer is
// a warning there, wrong metadata or a host name that does not exist an
// error (as under caddy run: the two load alike).
func TestValidateWithIssuerDown(t *testing.T) {
	bin := buildCaddy(t)
	notFound := httptest.NewServer(http.NotFoundHandler())
	defer notFound.Close()
	tests := []struct {
		name, issuer string
		ok           bool
		want         string // in the output
	}{
		{"unreachable", fmt.Sprintf("http://127.0.0.1:%d/oidc", freePort()), true, "device flow issuer unreachable at start"},
		{"no metadata there", notFound.URL + "/oidc", false, "HTTP status 404"},
		{"no such host", "https://idp.exmaple.invalid/oidc", false, "issuer host does not resolve (probably a typo): idp.exmaple.invalid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if host := strings.Split(tc.issuer, "/")[2]; strings.HasSuffix(host, ".invalid") {
				// RFC 6761: resolvers answer NXDOMAIN for .invalid; a
				// machine without any DNS cannot show the difference.
				var dnsErr *net.DNSError
				if _, err := net.LookupHost(host); !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
					t.Skipf("this machine's DNS does not say %s does not exist: %v", host, err)
				}
			}
			dir := storeDir(t)
			config := filepath.Join(dir, "Caddyfile")
			caddyfile := fmt.Sprintf("{\n\tadmin off\n\tauto_https off\n}\nhttp://localhost:%d {\n\tdevice_flow {\n\t\tissuer %s\n\t\tstorage badger %s\n\t}\n}\n",
				freePort(), tc.issuer, filepath.Join(dir, "db"))
			if err := os.WriteFile(config, []byte(caddyfile), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(bin, "validate", "--config", config, "--adapter", "caddyfile")
			cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir, "HOME="+dir)
			out, err := cmd.CombinedOutput()
			if (err == nil) != tc.ok || !strings.Contains(string(out), tc.want) {
				t.Fatalf("caddy validate: %v, want success %t and %q:\n%s", err, tc.ok, tc.want, out)
			}
		})
	}
}

// A reload stops the old config's background discovery.
func TestIssuerRetryStopsOnReload(t *testing.T) {
	up := startUpstream(t)
	startCaddy(t, issuerSiteConfig(t, fmt.Sprintf("http://127.0.0.1:%d/oidc", freePort()), up.ClientID, up.ClientSecret))
	if !discoveryRunning() {
		t.Fatal("no background discovery while the issuer is down")
	}
	startCaddy(t, siteConfig(t, up, ""))
	if discoveryRunning() {
		t.Fatal("the unloaded config's background discovery still runs")
	}
}

func discoveryRunning() bool {
	var stacks bytes.Buffer
	pprof.Lookup("goroutine").WriteTo(&stacks, 1)
	return strings.Contains(stacks.String(), "flow.(*Service).rediscover")
}
