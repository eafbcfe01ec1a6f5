package flow_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
	"github.com/caddy-device-flow/caddy-device-flow/internal/testupstream"
	"github.com/caddy-device-flow/caddy-device-flow/storage/badgerstore"
	"github.com/caddy-device-flow/caddy-device-flow/templates"
)

// freeAddr is a loopback address nothing listens on (yet).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// issuerHarness is a service configured with an issuer, not endpoints.
func issuerHarness(t *testing.T, issuer string, up *oidc) *harness {
	return newHarness(t, harnessOptions{configure: func(c *flow.Config) {
		c.AuthorizationEndpoint, c.TokenEndpoint, c.Issuer = "", "", issuer
		if up != nil {
			c.Clients = map[string]flow.Client{up.ClientID: {Name: "Test TV", Secret: up.ClientSecret}}
			c.TokenAuth = "post" // mockoidc takes the secret from the form only
		}
	}})
}

// An issuer that is down when the service starts is an outage: every
// endpoint answers 503 with Retry-After until its metadata is read in the
// background, and then a whole flow works, with the same service.
func TestIssuerDownAtStart(t *testing.T) {
	up := testupstream.New(t)
	addr := freeAddr(t)
	h := issuerHarness(t, "http://"+addr+"/oidc", up)

	for _, path := range []string{"/device/code", "/device/token", "/.well-known/oauth-authorization-server"} {
		a := h.post("192.0.2.1", path, nil)
		if path == "/.well-known/oauth-authorization-server" {
			a = h.do(http.DefaultClient, "", http.MethodGet, path, "", "")
		}
		if a.status != http.StatusServiceUnavailable || a.json(t)["error"] != "temporarily_unavailable" || a.header.Get("Retry-After") == "" {
			t.Fatalf("%s while the issuer is down: %d Retry-After=%q %s", path, a.status, a.header.Get("Retry-After"), a.body)
		}
	}
	page := h.lookup("192.0.2.1", "")
	if page.status != http.StatusServiceUnavailable || !page.isPage("error") || page.header.Get("Retry-After") == "" {
		t.Fatalf("/device while the issuer is down: %d Retry-After=%q\n%s", page.status, page.header.Get("Retry-After"), page.body)
	}
	if csp := page.header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self';") {
		t.Fatalf("before discovery no form may lead elsewhere: %s", csp)
	}
	if n := h.logs.FilterMessageSnippet("device flow issuer").Len(); n != 1 {
		t.Fatalf("%d lines about the issuer at start, want 1: %v", n, h.logs.All())
	}

	up.Listen(t, addr)
	deadline := time.Now().Add(15 * time.Second)
	for h.post("192.0.2.1", "/device/code", nil).status == http.StatusServiceUnavailable {
		if time.Now().After(deadline) {
			t.Fatalf("still 503 long after the issuer came up: %v", h.logs.All())
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, msg := range []string{"discovered upstream", "device flow issuer recovered"} {
		if h.logs.FilterMessage(msg).Len() != 1 {
			t.Fatalf("no %q line: %v", msg, h.logs.All())
		}
	}

	auth := h.newCode("192.0.2.1", up.ClientID)
	deviceCode, userCode := auth["device_code"].(string), auth["user_code"].(string)
	done := h.approve(personBrowser(), userCode, nil)
	if !done.isPage("success") {
		t.Fatalf("sign-in through the discovered endpoints: %d\n%s", done.status, done.body)
	}
	if csp := done.header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self' http://"+addr) {
		t.Fatalf("the pages' policy does not follow the discovered sign-in origin: %s", csp)
	}
	h.clock.Advance(5 * time.Second)
	if status, out := h.poll(deviceCode, up.ClientID); status != http.StatusOK || out["access_token"] == nil {
		t.Fatalf("device: %d %v, want its tokens", status, out)
	}
	md := h.do(http.DefaultClient, "", http.MethodGet, "/.well-known/oauth-authorization-server", "", "")
	if md.status != http.StatusOK || md.json(t)["scopes_supported"] == nil {
		t.Fatalf("metadata after discovery: %d %s", md.status, md.body)
	}
}

// metadataServer answers the OpenID Connect discovery path with the
// document doc makes of its own URL, and 404 elsewhere.
func metadataServer(t *testing.T, doc func(self string) string) *httptest.Server {
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/openid-configuration" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, doc(srv.URL))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func statusServer(t *testing.T, status int) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// An issuer that answers with wrong metadata is a configuration error;
// one that does not answer, or answers that it is failing, is an outage.
func TestIssuerOutageOrWrongMetadata(t *testing.T) {
	good := func(self string) string {
		return `{"issuer":"` + self + `","authorization_endpoint":"` + self + `/authorize","token_endpoint":"` + self + `/token"}`
	}
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	t.Cleanup(slow.Close)
	tests := []struct {
		name, issuer string
		wrong        string // the load error; "" for an outage
	}{
		{"connection refused", "http://" + freeAddr(t), ""},
		{"timeout", slow.URL, ""},
		{"502 from a proxy", statusServer(t, http.StatusBadGateway).URL, ""},
		{"429", statusServer(t, http.StatusTooManyRequests).URL, ""},
		{"no metadata there", statusServer(t, http.StatusNotFound).URL, "HTTP status 404"},
		{"not JSON", metadataServer(t, func(string) string { return "<html>" }).URL, "not a JSON metadata document"},
		{"another issuer", metadataServer(t, func(string) string { return good("https://idp.example") }).URL, "names issuer"},
		{"no S256", metadataServer(t, func(self string) string {
			return strings.TrimSuffix(good(self), "}") + `,"code_challenge_methods_supported":["plain"]}`
		}).URL, "PKCE S256"},
		{"bad endpoint", metadataServer(t, func(self string) string {
			return strings.Replace(good(self), `"token_endpoint":"`+self, `"token_endpoint":"ftp://idp.example`, 1)
		}).URL, "token_endpoint"},
		{"a reserved name in the authorization endpoint's query", metadataServer(t, func(self string) string {
			return strings.Replace(good(self), "/authorize", "/authorize?tenant=a&scope%5B%5D=admin", 1)
		}).URL, `authorization_endpoint: its query: authorization parameter "scope[]" may be read as "scope"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := flow.Discover(context.Background(), &http.Client{Timeout: 300 * time.Millisecond}, tc.issuer)
			if outage := errors.Is(err, flow.ErrIssuerUnreachable); err == nil || outage != (tc.wrong == "") {
				t.Fatalf("Discover: %v; want an outage: %t", err, tc.wrong == "")
			}
			svc, err := flow.New(context.Background(), issuerConfig(t, tc.issuer))
			if tc.wrong != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wrong) {
					t.Fatalf("New: %v, want a load error with %q", err, tc.wrong)
				}
				return
			}
			if err != nil {
				t.Fatalf("New with the issuer down: %v", err)
			}
			// Close ends the background discovery and waits for it.
			closed := make(chan struct{})
			go func() { svc.Close(); close(closed) }()
			select {
			case <-closed:
			case <-time.After(5 * time.Second):
				t.Fatal("Close did not stop the background discovery")
			}
		})
	}
}

func issuerConfig(t *testing.T, issuer string) flow.Config {
	db, err := badgerstore.Open(badgerstore.Options{InMemory: true, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	pages, err := templates.New("")
	if err != nil {
		t.Fatal(err)
	}
	core, _ := observer.New(zap.DebugLevel)
	return flow.Config{Issuer: issuer, Store: db.Store("issuer-test"), Pages: pages, Logger: zap.New(core),
		UpstreamTimeout: 300 * time.Millisecond}
}

// Metadata that turns up wrong while the service runs (here, naming a
// request_uri in the sign-in URL) is retried like an outage: the endpoints
// stay 503, an error line says what is wrong, and good metadata later
// brings the flows up.
func TestRediscoveryRefusesWrongMetadata(t *testing.T) {
	var phase atomic.Int32 // 0: failing, 1: wrong metadata, 2: good
	var served atomic.Int32
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/openid-configuration" {
			http.NotFound(w, r)
			return
		}
		query := ""
		switch phase.Load() {
		case 0:
			w.WriteHeader(http.StatusBadGateway)
			return
		case 1:
			query = "?request_uri=https://evil.example/r"
			served.Add(1)
		}
		fmt.Fprintf(w, `{"issuer":%q,"authorization_endpoint":%q,"token_endpoint":%q}`, srv.URL, srv.URL+"/authorize"+query, srv.URL+"/token")
	}))
	t.Cleanup(srv.Close)
	h := issuerHarness(t, srv.URL, nil)

	phase.Store(1)
	deadline := time.Now().Add(15 * time.Second)
	for served.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the wrong metadata was never read")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if a := h.post("192.0.2.1", "/device/code", nil); a.status != http.StatusServiceUnavailable {
		t.Fatalf("device code with wrong metadata: %d %s", a.status, a.body)
	}
	deadline = time.Now().Add(5 * time.Second)
	for h.logs.FilterMessageSnippet("issuer metadata is wrong").Len() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no line says the metadata is wrong: %v", h.logs.All())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if line := h.logs.FilterMessageSnippet("issuer metadata is wrong").All()[0]; line.Level != zapcore.ErrorLevel ||
		!strings.Contains(fmt.Sprint(line.ContextMap()["error"]), `"request_uri" is set by the flow`) {
		t.Fatalf("the line: %v %v", line.Level, line.ContextMap())
	}

	phase.Store(2)
	deadline = time.Now().Add(15 * time.Second)
	for h.post("192.0.2.1", "/device/code", nil).status == http.StatusServiceUnavailable {
		if time.Now().After(deadline) {
			t.Fatalf("still 503 after the metadata was put right: %v", h.logs.All())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
