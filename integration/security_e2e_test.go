package integration

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-device-flow/caddy-device-flow/internal/testsecrets"
)

// Hardening against a hostile world (RFC 8628 §5, RFC 9700), end to end
// through Caddy: guess limits on Caddy's idea of the client address,
// no secrets in Caddy's logs. The flow's own defences are tested in flow/.

// withGlobalOptions adds lines to the Caddyfile's global options block.
func withGlobalOptions(config, lines string) string {
	return strings.Replace(config, "\tskip_install_trust\n", "\tskip_install_trust\n"+lines+"\n", 1)
}

// rawRequest sends anything to the site: method, path (with query),
// content type, body and extra headers, as a hostile client would.
func rawRequest(t *testing.T, method, path, contentType string, body io.Reader, headers map[string]string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, testSite+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// guess opens the confirmation link with a code, from the address the
// X-Forwarded-For header claims (if any).
func guess(t *testing.T, code, forwardedFor string) (int, http.Header, string) {
	t.Helper()
	headers := map[string]string{}
	if forwardedFor != "" {
		headers["X-Forwarded-For"] = forwardedFor
	}
	return rawRequest(t, http.MethodGet, "/device?code="+url.QueryEscape(code), "", nil, headers)
}

func isPage(body, name string) bool { return strings.Contains(body, `data-page="`+name+`"`) }

// Per-address guess limits count the address Caddy determined: a spoofed
// X-Forwarded-For from an untrusted peer changes nothing; behind a trusted
// proxy the forwarded address counts (in strict mode, the rightmost one
// the proxy added, whatever the client put before it).
func TestGuessLimitUsesCaddysClientIP(t *testing.T) {
	up := startUpstream(t)
	tests := []struct {
		name    string
		global  string
		spoofed func(i int) string // X-Forwarded-For of the i-th wrong guess, all from one client
		other   string             // another client's X-Forwarded-For
		otherOK bool               // whether that other client still may guess
	}{
		{"untrusted peer spoofs X-Forwarded-For", "",
			func(i int) string { return "198.51.100." + strconv.Itoa(i) }, "203.0.113.99", false},
		{"trusted proxy", "\tservers {\n\t\ttrusted_proxies static 127.0.0.1/32\n\t}",
			func(int) string { return "203.0.113.1" }, "203.0.113.2", true},
		{"trusted proxy, strict, client prepends addresses", "\tservers {\n\t\ttrusted_proxies static 127.0.0.1/32\n\t\ttrusted_proxies_strict\n\t}",
			func(i int) string { return "198.51.100." + strconv.Itoa(i) + ", 203.0.113.1" }, "198.51.100.1, 203.0.113.2", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			startCaddy(t, withGlobalOptions(siteConfig(t, up, "guess_limit 3 per 15m"), tc.global))
			for i := range 3 {
				if status, _, body := guess(t, "BBBB-BBBB", tc.spoofed(i)); status != http.StatusBadRequest || !isPage(body, "enter") {
					t.Fatalf("wrong guess %d: %d", i, status)
				}
			}
			status, h, body := guess(t, "BBBB-BBBB", tc.spoofed(3))
			if status != http.StatusTooManyRequests || !isPage(body, "toomany") || h.Get("Retry-After") == "" {
				t.Fatalf("fourth guess from the same client: %d Retry-After=%q", status, h.Get("Retry-After"))
			}
			status, _, _ = guess(t, "BBBB-BBBB", tc.other)
			if got := status == http.StatusBadRequest; got != tc.otherOK {
				t.Fatalf("another client (X-Forwarded-For %q): %d", tc.other, status)
			}
		})
	}
}

// With Caddy logging at debug level, a whole flow logs no device code,
// token, client secret, PKCE verifier or authorization code. flow's
// TestAuditEvents looks for them in what the flow logs; this is what
// Caddy writes: its encoder, and its own lines and the module's, from
// loading a config that holds the client secret to the refresh.
func TestNoSecretsInDebugLogs(t *testing.T) {
	up := startUpstream(t)
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	startCaddy(t, withGlobalOptions(siteConfig(t, up, ""),
		"\tlog {\n\t\toutput file "+logFile+"\n\t\tlevel DEBUG\n\t}"))
	tv := newDevice(t, up.Config().ClientID, "openid profile")
	tv.poll()

	b := newBrowser(t)
	callback := lastRedirect(t, b, tv) // stops before the callback
	secrets := map[string]string{
		"device code":        tv.deviceCode(),
		"client secret":      up.Config().ClientSecret,
		"authorization code": mustQueryParam(t, callback, "code"),
	}
	b.client.CheckRedirect = nil
	if done := b.get(callback); !done.is("success") {
		t.Fatalf("callback: %d", done.status)
	}
	verifiers := up.Verifiers()
	if len(verifiers) == 0 {
		t.Fatal("the upstream was sent no PKCE verifier")
	}
	for i, v := range verifiers {
		secrets["PKCE verifier "+strconv.Itoa(i)] = v
	}
	status, tokens := tv.poll()
	if status != http.StatusOK {
		t.Fatalf("poll: %d %v", status, tokens)
	}
	for _, name := range []string{"access_token", "refresh_token", "id_token"} {
		secrets[name], _ = tokens[name].(string)
	}
	// A refresh through the relay, so its log lines are covered too.
	status, refreshed, _ := postForm(t, "/device/token", url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {secrets["refresh_token"]}, "client_id": {up.Config().ClientID},
	})
	if status != http.StatusOK {
		t.Fatalf("refresh: %d %v", status, refreshed)
	}
	secrets["refreshed access_token"], _ = refreshed["access_token"].(string)

	startCaddy(t, siteConfig(t, up, "")) // logs go back to the default
	logged, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(logged, []byte(`"level":"debug"`)) || !bytes.Contains(logged, []byte("device code issued")) {
		t.Fatalf("the debug log was not written:\n%s", logged)
	}
	testsecrets.Absent(t, "debug log", logged, secrets)
}

func mustQueryParam(t *testing.T, u, name string) string {
	t.Helper()
	parsed, err := url.Parse(u)
	if err != nil || parsed.Query().Get(name) == "" {
		t.Fatalf("no %s in %q", name, u)
	}
	return parsed.Query().Get(name)
}

// Caddy's access log (opt-in, per site) records request URIs, and the
// upstream's redirect carries the authorization code in its query. The
// filter docs/security.md recommends keeps it out.
func TestAccessLogFilterDropsTheCode(t *testing.T) {
	up := startUpstream(t)
	logFile := filepath.Join(t.TempDir(), "access.log")
	accessLog := "\tlog {\n\t\toutput file " + logFile + "\n\t\tformat filter {\n\t\t\trequest>uri query {\n\t\t\t\tdelete code\n\t\t\t}\n\t\t}\n\t}\n"
	cfg := strings.Replace(siteConfig(t, up, ""), "\trespond \"next handler\" 200\n", "\trespond \"next handler\" 200\n"+accessLog, 1)
	startCaddy(t, cfg)
	tv := newDevice(t, up.Config().ClientID, "openid")
	b := newBrowser(t)
	callback := lastRedirect(t, b, tv)
	b.client.CheckRedirect = nil
	if done := b.get(callback); !done.is("success") {
		t.Fatalf("callback: %d", done.status)
	}
	startCaddy(t, siteConfig(t, up, ""))
	logged, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(logged, []byte(`"uri":"/auth/redirect?`)) {
		t.Fatalf("the callback was not access-logged:\n%s", logged)
	}
	testsecrets.Absent(t, "access log", logged, map[string]string{"authorization code": mustQueryParam(t, callback, "code")})
}
