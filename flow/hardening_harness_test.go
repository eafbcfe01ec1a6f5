package flow_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
	"github.com/caddy-device-flow/caddy-device-flow/internal/testclock"
	"github.com/caddy-device-flow/caddy-device-flow/internal/testupstream"
	"github.com/caddy-device-flow/caddy-device-flow/storage/badgerstore"
	"github.com/caddy-device-flow/caddy-device-flow/templates"
)

// The hardening tests drive a flow.Service directly through httptest: a
// real Badger store, the real embedded pages, mockoidc as the upstream,
// a hand-moved clock and a zap observer that keeps every log line.

// testIPHeader lets a test say which client address a request comes
// from; in Caddy the address comes from trusted_proxies handling.
const testIPHeader = "X-Test-Client-IP"

type harness struct {
	t     testing.TB
	svc   *flow.Service
	db    *badgerstore.DB
	store *badgerstore.Store
	srv   *httptest.Server
	clock *testclock.Clock
	logs  *observer.ObservedLogs
	up    *oidc // nil unless the harness was asked for one

	stopped bool
}

type harnessOptions struct {
	dir      string // Badger folder; in memory when ""
	upstream bool   // start mockoidc and point the service at it
	// tokenEndpoint, when set, replaces the upstream's token endpoint.
	tokenEndpoint string
	clock         *testclock.Clock
	configure     func(*flow.Config)
}

func newHarness(t testing.TB, o harnessOptions) *harness {
	t.Helper()
	h := &harness{t: t, clock: o.clock}
	if h.clock == nil {
		h.clock = testclock.New()
	}
	var err error
	h.db, err = badgerstore.Open(badgerstore.Options{Dir: o.dir, InMemory: o.dir == "", GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	h.store = h.db.Store("flow-test")
	t.Cleanup(h.stop)
	pages, err := templates.New("")
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.DebugLevel)
	h.logs = logs
	cfg := flow.Config{
		AuthorizationEndpoint: "https://idp.example/authorize",
		TokenEndpoint:         "https://idp.example/token",
		Store:                 h.store,
		Pages:                 pages,
		Logger:                zap.New(core),
		Now:                   h.clock.Now,
		ClientIP:              func(r *http.Request) string { return r.Header.Get(testIPHeader) },
	}
	if o.upstream {
		h.up = startOIDC(t)
		cfg.AuthorizationEndpoint, cfg.TokenEndpoint = h.up.AuthorizationEndpoint(), h.up.TokenEndpoint()
		cfg.Clients = map[string]flow.Client{h.up.ClientID: {Name: "Test TV", Secret: h.up.ClientSecret}}
		cfg.TokenAuth = "post" // mockoidc takes the secret from the form only
	}
	if o.tokenEndpoint != "" {
		cfg.TokenEndpoint = o.tokenEndpoint
	}
	if o.configure != nil {
		o.configure(&cfg)
	}
	h.svc, err = flow.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = httptest.NewServer(h.svc)
	return h
}

// stop closes the server and the store, as a restart would; once.
func (h *harness) stop() {
	if h.stopped {
		return
	}
	h.stopped = true
	if h.srv != nil {
		h.srv.Close()
	}
	if h.svc != nil {
		h.svc.Close()
	}
	if err := h.db.Close(); err != nil {
		h.t.Errorf("closing the store: %v", err)
	}
}

// oidc is the upstream: mockoidc, see internal/testupstream.
type oidc = testupstream.Upstream

func startOIDC(t testing.TB) *oidc { return testupstream.Start(t) }

// answer is one HTTP answer, read whole.
type answer struct {
	status int
	header http.Header
	body   string
	url    string
}

func (a answer) json(t testing.TB) map[string]any {
	t.Helper()
	var out map[string]any
	if err := json.Unmarshal([]byte(a.body), &out); err != nil {
		t.Fatalf("%s answered %d with non-JSON %q", a.url, a.status, a.body)
	}
	return out
}

func (a answer) isPage(name string) bool {
	return strings.Contains(a.body, `data-page="`+name+`"`)
}

func read(t testing.TB, resp *http.Response, err error) answer {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: string(body), url: resp.Request.URL.String()}
}

// do sends one request from the client address ip with the client c.
func (h *harness) do(c *http.Client, ip, method, path, contentType, body string) answer {
	h.t.Helper()
	req, err := http.NewRequest(method, h.srv.URL+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if ip != "" {
		req.Header.Set(testIPHeader, ip)
	}
	resp, err := c.Do(req)
	return read(h.t, resp, err)
}

// post sends a form from a device (no cookies).
func (h *harness) post(ip, path string, form url.Values) answer {
	h.t.Helper()
	return h.do(http.DefaultClient, ip, http.MethodPost, path, "application/x-www-form-urlencoded", form.Encode())
}

// lookup is a person opening verification_uri_complete with a code.
func (h *harness) lookup(ip, code string) answer {
	h.t.Helper()
	return h.do(http.DefaultClient, ip, http.MethodGet, "/device?code="+url.QueryEscape(code), "", "")
}

// newCode asks for a device code and returns the §3.2 answer.
func (h *harness) newCode(ip, clientID string) map[string]any {
	h.t.Helper()
	a := h.post(ip, "/device/code", url.Values{"client_id": {clientID}, "scope": {"openid"}})
	if a.status != http.StatusOK {
		h.t.Fatalf("device code: %d %s", a.status, a.body)
	}
	return a.json(h.t)
}

// poll is one device_code poll.
func (h *harness) poll(deviceCode, clientID string) (int, map[string]any) {
	h.t.Helper()
	a := h.post("", "/device/token", url.Values{
		"grant_type":  {"urn:ietf:params:oauth:grant-type:device_code"},
		"device_code": {deviceCode},
		"client_id":   {clientID},
	})
	return a.status, a.json(h.t)
}

// personBrowser keeps cookies and follows redirects, like a browser.
func personBrowser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 10 * time.Second}
}

// formToken reads the CSRF token of the page's form.
func formToken(t testing.TB, page string) string {
	t.Helper()
	const marker = `name="csrf" value="`
	i := strings.Index(page, marker)
	if i < 0 {
		t.Fatalf("no csrf field on the page:\n%s", page)
	}
	rest := page[i+len(marker):]
	return rest[:strings.IndexByte(rest, '"')]
}

// approveUpTo walks a person through the confirmation page and sends the
// browser to the upstream. stopAtCallback, when set, is given the
// callback URL instead of the browser following it.
func (h *harness) approve(b *http.Client, userCode string, stopAtCallback func(callback string)) answer {
	h.t.Helper()
	if stopAtCallback != nil {
		b.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
			if req.URL.Path == "/auth/redirect" {
				stopAtCallback(req.URL.String())
				return http.ErrUseLastResponse
			}
			return nil
		}
		defer func() { b.CheckRedirect = nil }()
	}
	confirm := h.do(b, "", http.MethodGet, "/device?code="+url.QueryEscape(userCode), "", "")
	if !confirm.isPage("confirm") {
		h.t.Fatalf("confirmation page expected, got %d:\n%s", confirm.status, confirm.body)
	}
	form := url.Values{"csrf": {formToken(h.t, confirm.body)}, "user_code": {userCode}, "action": {"approve"}}
	return h.do(b, "", http.MethodPost, "/device", "application/x-www-form-urlencoded", form.Encode())
}
