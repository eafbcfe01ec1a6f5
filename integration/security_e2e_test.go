package integration

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
	"github.com/caddy-device-flow/caddy-device-flow/storage/redisstore/redistest"
)

// Hardening against a hostile world (RFC 8628 §5, RFC 9700), end to end
// through Caddy: guess limits on Caddy's idea of the client address,
// counters that survive a restart, one answer for every wrong code, no
// store growth from unknown codes, flood limits, secrets neither at rest
// nor in the logs, and bad input of every kind.

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

// Malformed, unknown, expired, denied, approved and already used codes all
// get the same answer: the same status and the same page but for what
// was typed.
func TestWrongCodesAllLookAlike(t *testing.T) {
	up := startUpstream(t)
	startCaddy(t, siteConfig(t, up, "guess_limit 50 per 15m"))
	clientID := up.Config().ClientID

	expired := newDevice(t, clientID, "openid")
	fakeClock.Advance(flow.DefaultExpiresIn + time.Second)
	used := newDevice(t, clientID, "openid")
	if done := newBrowser(t).approve(used.userCode()); !done.is("success") {
		t.Fatalf("approve: %d", done.status)
	}
	if status, _ := used.pollAfter(5 * time.Second); status != http.StatusOK {
		t.Fatalf("delivery: %d", status)
	}
	approved := newDevice(t, clientID, "openid")
	if done := newBrowser(t).approve(approved.userCode()); !done.is("success") {
		t.Fatalf("approve: %d", done.status)
	}
	denied := newDevice(t, clientID, "openid")
	b := newBrowser(t)
	confirm := b.get(denied.auth["verification_uri_complete"].(string))
	b.post("/device", url.Values{"csrf": {confirm.csrf(t)}, "user_code": {denied.userCode()}, "action": {"deny"}})

	codes := map[string]string{
		"malformed":       "!!-??",
		"too short":       "BCDF-GHJ",
		"not base-20":     "AEIO-U123",
		"unknown":         "BBBB-BBBB",
		"expired":         expired.userCode(),
		"already used":    used.userCode(),
		"approved":        approved.userCode(),
		"denied":          denied.userCode(),
		"unknown, spaced": "b b b b c c c c",
	}
	entry := b.get(testSite + "/device")
	csrf := entry.csrf(t)
	var first, firstName string
	for name, code := range codes {
		for _, how := range []string{"link", "form"} {
			var p page
			if how == "link" {
				p = b.get(testSite + "/device?code=" + url.QueryEscape(code))
			} else {
				p = b.post("/device", url.Values{"csrf": {csrf}, "user_code": {code}, "action": {"lookup"}})
			}
			if p.status != http.StatusBadRequest || !p.is("enter") {
				t.Fatalf("%s code by %s: %d", name, how, p.status)
			}
			body := strings.ReplaceAll(p.body, htmlEscape(code), "TYPED")
			body = strings.ReplaceAll(body, p.csrf(t), "CSRF")
			if first == "" {
				first, firstName = body, name
			} else if body != first {
				t.Fatalf("the %s code (by %s) is answered differently from the %s code:\n%s\n---\n%s", name, how, firstName, body, first)
			}
		}
	}
}

func htmlEscape(s string) string { return template.HTMLEscapeString(s) }

// Polling with device codes nobody issued creates nothing in the store:
// Redis has the same keys before and after.
func TestUnknownDeviceCodesCreateNothing(t *testing.T) {
	srv := redistest.Start(t)
	up := startUpstream(t)
	startCaddy(t, siteConfigStorage(t, up, redisStorage(srv.URL), ""))
	clientID := up.Config().ClientID
	newDevice(t, clientID, "openid") // a real one, so the store is not empty
	before := redisKeys(t, srv)

	var wg sync.WaitGroup
	errs := make(chan string, 1000)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < 1000; i += 8 {
				status, out, _ := postForm(t, "/device/token", url.Values{
					"grant_type":  {"urn:ietf:params:oauth:grant-type:device_code"},
					"device_code": {randomCode()},
					"client_id":   {clientID},
				})
				if status != http.StatusBadRequest || out["error"] != "invalid_grant" {
					errs <- strconv.Itoa(status) + " " + fmt.Sprint(out["error"])
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatalf("a random device code was answered %s, want 400 invalid_grant", e)
	}
	for k := range redisKeys(t, srv) {
		if !before[k] {
			t.Errorf("polling unknown codes created the key %q", k)
		}
	}
}

// randomCode looks like a device code, and is none.
func randomCode() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// redisKeys lists every key in the server.
func redisKeys(t *testing.T, srv *redistest.Server) map[string]bool {
	t.Helper()
	out, err := redistest.Do(srv.Addr, "KEYS", "*")
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, k := range strings.Fields(out) {
		keys[k] = true
	}
	return keys
}

// Parameters in the query string of a POST are refused on both device
// endpoints, even next to a valid body.
func TestPostQueryIsRefused(t *testing.T) {
	up := startUpstream(t)
	startCaddy(t, siteConfig(t, up, ""))
	tv := newDevice(t, up.Config().ClientID, "openid")
	const form = "application/x-www-form-urlencoded"
	for _, tc := range []struct{ path, body string }{
		{"/device/code?client_id=" + up.Config().ClientID, "scope=openid"},
		{"/device/code?scope=openid", "client_id=" + up.Config().ClientID},
		{"/device/token?device_code=" + tv.deviceCode(), "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&client_id=" + up.Config().ClientID},
		{"/device/token?x=1", "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&device_code=" + tv.deviceCode() + "&client_id=" + up.Config().ClientID},
	} {
		status, h, body := rawRequest(t, http.MethodPost, tc.path, form, strings.NewReader(tc.body), nil)
		if status != http.StatusBadRequest || !strings.Contains(body, `"error":"invalid_request"`) || h.Get("Content-Type") != "application/json" {
			t.Errorf("POST %s: %d %s", tc.path, status, body)
		}
	}
}

// secretForms is a secret as it might sit in a file: as is, and base64 in
// both alphabets at every alignment (a []byte field in JSON is base64).
func secretForms(secret string) []string {
	forms := []string{secret}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		for offset := range 3 {
			s := enc.EncodeToString(append(make([]byte, offset), secret...))
			if len(s) > 12 {
				forms = append(forms, s[4:len(s)-4]) // the part no neighbour changes
			}
		}
	}
	return forms
}

// dirBytes reads every file under dir.
func dirBytes(t *testing.T, dir string) []byte {
	t.Helper()
	var all []byte
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		all = append(all, b...)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return all
}

func expectAbsent(t *testing.T, where string, haystack []byte, secrets map[string]string) {
	t.Helper()
	for name, secret := range secrets {
		for _, form := range secretForms(secret) {
			if bytes.Contains(haystack, []byte(form)) {
				t.Errorf("the %s is in the %s (as %.12q…)", name, where, form)
			}
		}
	}
}

// A copy of the Badger folder yields no device code and no token: not
// while approved tokens wait for the device, not after delivery.
func TestNoSecretsAtRestInBadger(t *testing.T) {
	up := startUpstream(t)
	dir := storeDir(t)
	cfg := siteConfigIn(t, up, dir, "")
	startCaddy(t, cfg)
	tv := newDevice(t, up.Config().ClientID, "openid profile")
	if done := newBrowser(t).approve(tv.userCode()); !done.is("success") {
		t.Fatalf("approve: %d", done.status)
	}
	startCaddy(t, siteConfig(t, up, "")) // Caddy lets go of (closes) the database
	waiting := dirBytes(t, dir)
	if len(waiting) == 0 {
		t.Fatal("the database folder is empty")
	}

	startCaddy(t, cfg)
	status, tokens := tv.pollAfter(5 * time.Second)
	if status != http.StatusOK {
		t.Fatalf("poll: %d %v", status, tokens)
	}
	secrets := map[string]string{"device code": tv.deviceCode()}
	for _, name := range []string{"access_token", "refresh_token", "id_token"} {
		secrets[name], _ = tokens[name].(string)
		if secrets[name] == "" {
			t.Fatalf("no %s delivered", name)
		}
	}
	expectAbsent(t, "database while the tokens waited", waiting, secrets)
	startCaddy(t, siteConfig(t, up, ""))
	expectAbsent(t, "database after delivery", dirBytes(t, dir), secrets)
}

// With Caddy logging at debug level, a whole flow logs no device code,
// token, client secret, PKCE verifier or authorization code.
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
	status, tokens := tv.pollAfter(5 * time.Second)
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
	expectAbsent(t, "debug log", logged, secrets)
}

func mustQueryParam(t *testing.T, u, name string) string {
	t.Helper()
	parsed, err := url.Parse(u)
	if err != nil || parsed.Query().Get(name) == "" {
		t.Fatalf("no %s in %q", name, u)
	}
	return parsed.Query().Get(name)
}

// Bad input of every kind at every endpoint: a 4xx with RFC 6749 JSON or
// a page, never a 5xx; the server stays up and a flow started before
// still completes.
func TestBadInputEverywhere(t *testing.T) {
	up := startUpstream(t)
	startCaddy(t, siteConfig(t, up, ""))
	clientID := up.Config().ClientID
	tv := newDevice(t, clientID, "openid")
	person := newBrowser(t)
	confirm := person.get(tv.auth["verification_uri_complete"].(string))
	if !confirm.is("confirm") {
		t.Fatalf("confirmation page: %d", confirm.status)
	}

	const form = "application/x-www-form-urlencoded"
	huge := "client_id=" + strings.Repeat("a", flow.MaxBodyBytes+10)
	junk := make([]byte, 4096)
	rand.Read(junk)
	grant := "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code"
	type kind int
	const (
		jsonAnswer kind = iota
		pageAnswer
	)
	tests := []struct {
		name, method, path, contentType, body string
		status                                int
		answer                                kind
	}{
		{"code: oversized", "POST", "/device/code", form, huge, 413, jsonAnswer},
		{"code: bad percent-encoding", "POST", "/device/code", form, "client_id=%zz", 400, jsonAnswer},
		{"code: duplicate client_id", "POST", "/device/code", form, "client_id=a&client_id=a", 400, jsonAnswer},
		{"code: JSON body", "POST", "/device/code", "application/json", `{"client_id":"` + clientID + `"}`, 400, jsonAnswer},
		{"code: no content type", "POST", "/device/code", "", "client_id=" + clientID, 400, jsonAnswer},
		{"code: multipart", "POST", "/device/code", "multipart/form-data; boundary=x", "--x\r\n\r\n--x--", 400, jsonAnswer},
		{"code: binary junk", "POST", "/device/code", form, string(junk), 400, jsonAnswer},
		{"code: bad content type", "POST", "/device/code", "application/x-www-form-urlencoded; ;;=", "client_id=a", 400, jsonAnswer},
		{"code: PUT", "PUT", "/device/code", form, "client_id=a", 405, jsonAnswer},
		{"token: oversized", "POST", "/device/token", form, huge, 413, jsonAnswer},
		{"token: bad percent-encoding", "POST", "/device/token", form, grant + "&device_code=%e2%8", 400, jsonAnswer},
		{"token: duplicate device_code", "POST", "/device/token", form, grant + "&device_code=a&device_code=b&client_id=" + clientID, 400, jsonAnswer},
		{"token: text/plain", "POST", "/device/token", "text/plain", grant, 400, jsonAnswer},
		{"token: binary junk", "POST", "/device/token", form, string(junk), 400, jsonAnswer},
		{"token: huge device_code", "POST", "/device/token", form, grant + "&client_id=" + clientID + "&device_code=" + strings.Repeat("x", 4000), 400, jsonAnswer},
		{"token: GET", "GET", "/device/token", "", "", 405, jsonAnswer},
		{"verify: oversized", "POST", "/device", form, "user_code=" + strings.Repeat("B", flow.MaxBodyBytes+10), 413, pageAnswer},
		{"verify: bad percent-encoding", "POST", "/device", form, "user_code=%zz", 400, pageAnswer},
		{"verify: duplicate action", "POST", "/device", form, "action=approve&action=deny", 400, pageAnswer},
		{"verify: binary junk", "POST", "/device", form, string(junk), 400, pageAnswer},
		{"verify: JSON", "POST", "/device", "application/json", `{}`, 400, pageAnswer},
		{"verify: no CSRF", "POST", "/device", form, "user_code=BBBB-BBBB&action=approve", 403, pageAnswer},
		{"verify: DELETE", "DELETE", "/device", "", "", 405, pageAnswer},
		// An unreadable query is no code at all: the entry page.
		{"verify: bad query", "GET", "/device?code=%zz%00", "", "", 200, pageAnswer},
		{"verify: huge code", "GET", "/device?code=" + strings.Repeat("B", 5000), "", "", 400, pageAnswer},
		{"callback: no state", "GET", "/auth/redirect?code=abc", "", "", 400, pageAnswer},
		{"callback: bad percent-encoding", "GET", "/auth/redirect?state=%zz&code=%", "", "", 400, pageAnswer},
		{"callback: unknown state", "GET", "/auth/redirect?state=" + strings.Repeat("s", 43) + "&code=abc", "", "", 400, pageAnswer},
		{"callback: huge state", "GET", "/auth/redirect?state=" + strings.Repeat("s", 5000), "", "", 400, pageAnswer},
		{"callback: POST", "POST", "/auth/redirect", form, "state=x", 405, pageAnswer},
		{"qr: no code", "GET", "/device/qr", "", "", 404, jsonAnswer},
		{"qr: junk code", "GET", "/device/qr?user_code=%00%ff%zz", "", "", 404, jsonAnswer},
		{"qr: unknown format", "GET", "/device/qr?user_code=BCDF-GHJK&format=gif", "", "", 400, jsonAnswer},
		{"qr: POST", "POST", "/device/qr", form, string(junk), 405, jsonAnswer},
		{"metadata: POST", "POST", "/.well-known/oauth-authorization-server", form, string(junk), 405, jsonAnswer},
		{"metadata: DELETE", "DELETE", "/.well-known/oauth-authorization-server", "", "", 405, jsonAnswer},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, h, body := rawRequest(t, tc.method, tc.path, tc.contentType, strings.NewReader(tc.body), nil)
			if status != tc.status {
				t.Fatalf("%d, want %d: %.300s", status, tc.status, body)
			}
			switch tc.answer {
			case jsonAnswer:
				if h.Get("Content-Type") != "application/json" || !regexp.MustCompile(`^\{"error":"[a-z_]+"`).MatchString(body) {
					t.Fatalf("not an RFC 6749 error: %s %.300s", h.Get("Content-Type"), body)
				}
			case pageAnswer:
				if !strings.HasPrefix(h.Get("Content-Type"), "text/html") || !strings.Contains(body, `data-page="`) {
					t.Fatalf("not a page: %s %.300s", h.Get("Content-Type"), body)
				}
			}
		})
	}

	// Still up, and the flow started before finishes.
	done := person.post("/device", url.Values{"csrf": {confirm.csrf(t)}, "user_code": {tv.userCode()}, "action": {"approve"}})
	if !done.is("success") {
		t.Fatalf("the earlier flow after the bad input: %d\n%s", done.status, done.body)
	}
	if status, tokens := tv.pollAfter(5 * time.Second); status != http.StatusOK {
		t.Fatalf("poll: %d %v", status, tokens)
	}
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
	expectAbsent(t, "access log", logged, map[string]string{"authorization code": mustQueryParam(t, callback, "code")})
}
