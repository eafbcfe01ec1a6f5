package flow_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// faultyTokenEndpoint stands in front of mockoidc's token endpoint and
// misbehaves on request. It is the one fake in these tests: a real IdP
// cannot be made to time out or answer HTML on cue. In "pass" mode it
// forwards to mockoidc untouched.
type faultyTokenEndpoint struct {
	real string // mockoidc's token endpoint

	mu    sync.Mutex
	mode  string
	forms []url.Values // every request's form, for the secrets it held
}

func (f *faultyTokenEndpoint) set(mode string) {
	f.mu.Lock()
	f.mode = mode
	f.mu.Unlock()
}

func (f *faultyTokenEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	f.mu.Lock()
	mode := f.mode
	f.forms = append(f.forms, r.PostForm)
	f.mu.Unlock()
	switch mode {
	case "hang": // until the caller gives up
		<-r.Context().Done()
	case "drop": // close the connection without a word
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	case "503":
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "down for maintenance")
	case "html":
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, "<!doctype html><title>Sign in</title><h1>Please sign in</h1>")
	case "badjson":
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"access_token": "abc", "token_type":`)
	case "form": // GitHub's answer to a client that does not ask for JSON
		status, body := f.forward(r.PostForm)
		var fields map[string]any
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		dec.Decode(&fields)
		out := url.Values{}
		for k, v := range fields {
			out.Set(k, fmt.Sprint(v))
		}
		w.Header().Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
		w.WriteHeader(status)
		io.WriteString(w, out.Encode())
	case "bad-error": // an error code no RFC allows: quotes, a backslash, UTF-8, 300 bytes more
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]string{"error": unsafeErrorCode})
	case "code-used": // someone redeemed the code first; mockoidc says so, quoting it
		f.forward(r.PostForm)
		fallthrough
	default:
		status, body := f.forward(r.PostForm)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write(body)
	}
}

func (f *faultyTokenEndpoint) forward(form url.Values) (int, []byte) {
	resp, err := http.PostForm(f.real, form)
	if err != nil {
		return http.StatusBadGateway, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// An upstream's error code goes into logs, the error page and a refresh's
// answer as it is, so what is not RFC 6749's error characters becomes '?'
// and it is cut to 64 bytes.
var (
	unsafeErrorCode = `bad"code\é` + strings.Repeat("x", 300)
	safeErrorCode   = `bad?code???` + strings.Repeat("x", 64-11)
)

// logWant is a log line an operator can act on.
type logWant struct {
	level    zapcore.Level
	message  string
	contains string // in one of the line's fields
}

// Every upstream fault gets a clear page (never a 500), a consistent
// answer to the device, and a log line that says what went wrong; a fault
// the person can recover from leaves the device pending, and a second try
// against a healthy upstream then completes.
func TestUpstreamFaults(t *testing.T) {
	fake := &faultyTokenEndpoint{}
	fakeSrv := httptest.NewServer(fake)
	defer fakeSrv.Close()
	h := newHarness(t, harnessOptions{upstream: true, tokenEndpoint: fakeSrv.URL + "/token",
		configure: func(c *flow.Config) { c.UpstreamTimeout = 200 * time.Millisecond }})
	fake.real = h.up.TokenEndpoint()
	clientID := h.up.ClientID

	tests := []struct {
		name       string
		token      string // how the token endpoint behaves
		deny       string // the IdP sends error=<deny> to the callback instead of a code
		replay     bool   // the callback is opened twice
		status     int
		page       string
		detail     string // shown on the error page
		absent     string // not on the page
		device     string // what the next poll hears; "" for the tokens
		log        logWant
		retryWorks bool
	}{
		{name: "token endpoint times out", token: "hang", status: 502, page: "error", device: "authorization_pending",
			log: logWant{zapcore.ErrorLevel, "device flow upstream failed", "timed out"}, retryWorks: true},
		{name: "token endpoint drops the connection", token: "drop", status: 502, page: "error", device: "authorization_pending",
			log: logWant{zapcore.ErrorLevel, "device flow upstream failed", "upstream unreachable"}, retryWorks: true},
		{name: "token endpoint answers 503", token: "503", status: 502, page: "error", device: "authorization_pending",
			log: logWant{zapcore.ErrorLevel, "device flow upstream failed", "upstream answered 503"}, retryWorks: true},
		{name: "token endpoint answers HTML", token: "html", status: 502, page: "error", device: "authorization_pending",
			log: logWant{zapcore.ErrorLevel, "device flow upstream failed", `not a JSON object (content type "text/html")`}, retryWorks: true},
		{name: "token endpoint answers malformed JSON", token: "badjson", status: 502, page: "error", device: "authorization_pending",
			log: logWant{zapcore.ErrorLevel, "device flow upstream failed", "not a JSON object"}, retryWorks: true},
		{name: "token endpoint refuses a used code", token: "code-used", status: 502, page: "error", detail: "invalid_grant", device: "authorization_pending",
			log: logWant{zapcore.WarnLevel, "upstream refused the code exchange", "invalid_grant"}, retryWorks: true},
		{name: "token endpoint answers form-encoded", token: "form", status: 200, page: "success", device: "",
			log: logWant{zapcore.InfoLevel, "device approved", clientID}},
		{name: "person denies at the IdP", deny: "access_denied", status: 200, page: "denied", device: "access_denied",
			log: logWant{zapcore.InfoLevel, "upstream denied the request", ""}},
		{name: "IdP fails at the callback", deny: "temporarily_unavailable", status: 502, page: "error", detail: "temporarily_unavailable", device: "authorization_pending",
			log: logWant{zapcore.WarnLevel, "upstream returned an error to the callback", "temporarily_unavailable"}, retryWorks: true},
		{name: "token endpoint answers an unsafe error code", token: "bad-error", status: 502, page: "error", detail: safeErrorCode, absent: safeErrorCode + "x", device: "authorization_pending",
			log: logWant{zapcore.WarnLevel, "upstream refused the code exchange", safeErrorCode}, retryWorks: true},
		{name: "IdP sends an unsafe error code to the callback", deny: unsafeErrorCode, status: 502, page: "error", detail: safeErrorCode, absent: safeErrorCode + "x", device: "authorization_pending",
			log: logWant{zapcore.WarnLevel, "upstream returned an error to the callback", safeErrorCode}, retryWorks: true},
		{name: "callback replayed", replay: true, status: 400, page: "error", device: "",
			log: logWant{zapcore.DebugLevel, "callback with an unknown or used state", ""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			outer := h.t
			h.t = t
			defer func() { h.t = outer }()
			h.logs.TakeAll()
			fake.set(tc.token)
			if tc.deny != "" {
				h.up.DenyNextLogin(tc.deny)
			}
			auth := h.newCode("192.0.2.1", clientID)
			deviceCode, userCode := auth["device_code"].(string), auth["user_code"].(string)
			secrets := []string{deviceCode, h.up.ClientSecret}

			b := personBrowser()
			var callback string
			h.approve(b, userCode, func(u string) { callback = u })
			if callback == "" {
				t.Fatal("the IdP did not send the browser back")
			}
			secrets = append(secrets, h.pendingVerifiers(t)...)
			if code := mustQuery(t, callback).Get("code"); code != "" {
				secrets = append(secrets, code)
			}
			got := h.do(b, "", http.MethodGet, strings.TrimPrefix(callback, h.srv.URL), "", "")
			if tc.replay {
				if !got.isPage("success") {
					t.Fatalf("first callback: %d\n%s", got.status, got.body)
				}
				got = h.do(b, "", http.MethodGet, strings.TrimPrefix(callback, h.srv.URL), "", "")
			}
			if got.status != tc.status || !got.isPage(tc.page) {
				t.Fatalf("page: %d, want %d %q:\n%s", got.status, tc.status, tc.page, got.body)
			}
			if tc.detail != "" && !strings.Contains(got.body, tc.detail) {
				t.Errorf("the page does not name %q:\n%s", tc.detail, got.body)
			}
			if tc.absent != "" && strings.Contains(got.body, tc.absent) {
				t.Errorf("the page shows %q:\n%s", tc.absent, got.body)
			}

			h.clock.Advance(flow.DefaultInterval)
			status, out := h.poll(deviceCode, clientID)
			switch {
			case tc.device == "" && status != http.StatusOK:
				t.Fatalf("device: %d %v, want the tokens", status, out)
			case tc.device == "":
				if tok, _ := out["access_token"].(string); tok == "" {
					t.Fatalf("no access_token in %v", out)
				}
				if _, ok := out["expires_in"].(float64); !ok {
					t.Errorf("expires_in must be a JSON number: %v", out)
				}
				secrets = append(secrets, out["access_token"].(string))
			case out["error"] != tc.device:
				t.Fatalf("device: %d %v, want %s", status, out, tc.device)
			}

			h.expectLog(t, tc.log)
			for _, f := range fake.takeForms() {
				secrets = append(secrets, f.Get("code"), f.Get("code_verifier"))
			}
			h.expectNoSecretsLogged(t, secrets)

			if tc.retryWorks {
				fake.set("pass")
				if done := h.approve(personBrowser(), userCode, nil); !done.isPage("success") {
					t.Fatalf("second try: %d\n%s", done.status, done.body)
				}
				h.clock.Advance(flow.DefaultInterval)
				if status, out := h.poll(deviceCode, clientID); status != http.StatusOK {
					t.Fatalf("device after the second try: %d %v", status, out)
				}
			}
		})
	}
}

func (f *faultyTokenEndpoint) takeForms() []url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	forms := f.forms
	f.forms = nil
	return forms
}

func mustQuery(t *testing.T, u string) url.Values {
	t.Helper()
	parsed, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return parsed.Query()
}

// pendingVerifiers reads the PKCE verifiers of the logins in the store:
// every value of the database that reads as a login (logins are JSON).
func (h *harness) pendingVerifiers(t *testing.T) []string {
	t.Helper()
	var out []string
	err := h.db.Badger().View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var login flow.Login
			err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &login) })
			if err == nil && login.Verifier != "" {
				out = append(out, login.Verifier)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// expectLog finds a line of the level, message and field content.
func (h *harness) expectLog(t *testing.T, want logWant) {
	t.Helper()
	for _, e := range h.logs.All() {
		if e.Level == want.level && e.Message == want.message && strings.Contains(logFields(e.ContextMap()), want.contains) {
			return
		}
	}
	var seen bytes.Buffer
	for _, e := range h.logs.All() {
		fmt.Fprintf(&seen, "\n  %s %q %s", e.Level, e.Message, logFields(e.ContextMap()))
	}
	t.Errorf("no %s log %q with %q; logged:%s", want.level, want.message, want.contains, seen.String())
}

// expectNoSecretsLogged checks every logged message and field.
func (h *harness) expectNoSecretsLogged(t *testing.T, secrets []string) {
	t.Helper()
	for _, e := range h.logs.All() {
		line := e.Message + " " + logFields(e.ContextMap())
		for _, s := range secrets {
			if len(s) >= 8 && strings.Contains(line, s) {
				t.Errorf("a secret (%.4s…) reached the log: %s", s, line)
			}
		}
	}
}

func logFields(m map[string]any) string { return fmt.Sprint(m) }

// A refresh the upstream refuses is answered with its error code, made
// safe the same way: a device (and its logs) never gets the raw bytes.
func TestRefreshRelaysASafeErrorCode(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]string{"error": unsafeErrorCode})
	}))
	defer up.Close()
	h := newHarness(t, harnessOptions{tokenEndpoint: up.URL, configure: func(c *flow.Config) {
		c.Clients = map[string]flow.Client{"tv": {Secret: "s3cret"}}
	}})
	a := h.post("192.0.2.1", "/device/token", refresh(nil))
	if got := a.json(t)["error"]; a.status != http.StatusBadRequest || got != safeErrorCode {
		t.Fatalf("the device heard %d %q, want 400 %q", a.status, got, safeErrorCode)
	}
}
