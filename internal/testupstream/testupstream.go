// Package testupstream runs the upstream authorization server of the
// tests: mockoidc, a real OpenID Connect server library that checks client
// credentials and PKCE, with what it cannot do by itself: send the browser
// back with error=access_denied, as an IdP does when the person says no,
// tell which PKCE verifiers it was sent (for tests that look for them
// where they must not be), and what the authorization requests asked.
package testupstream

import (
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/oauth2-proxy/mockoidc"
)

// Upstream is a mockoidc on a loopback port.
type Upstream struct {
	*mockoidc.MockOIDC
	denyNext atomic.Pointer[string]

	mu        sync.Mutex
	verifiers []string
	authorize []url.Values
}

// Start runs one on a free port until the test ends.
func Start(t testing.TB) *Upstream {
	t.Helper()
	u := New(t)
	u.Listen(t, "127.0.0.1:0")
	return u
}

// New makes one that does not run yet, for a test that configures a
// handler with its client before the upstream is up: Config's client ID
// and secret are set, its URLs are not until Listen.
func New(t testing.TB) *Upstream {
	t.Helper()
	m, err := mockoidc.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	u := &Upstream{MockOIDC: m}
	if err := m.AddMiddleware(u.middleware); err != nil {
		t.Fatal(err)
	}
	return u
}

// Listen runs it at addr ("127.0.0.1:8123") until the test ends. Its
// issuer is then "http://" + addr + "/oidc".
func (u *Upstream) Listen(t testing.TB, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Start(ln, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Shutdown() })
}

// DenyNextLogin makes the next authorization request come back to the
// redirect_uri with error=code instead of an authorization code.
func (u *Upstream) DenyNextLogin(code string) { u.denyNext.Store(&code) }

// Verifiers returns the PKCE code_verifiers sent to the token endpoint so
// far.
func (u *Upstream) Verifiers() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.verifiers)
}

// AuthorizeQueries returns the queries of the authorization requests so
// far, oldest first.
func (u *Upstream) AuthorizeQueries() []url.Values {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.authorize)
}

func (u *Upstream) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/token") && r.ParseForm() == nil && r.PostForm.Get("code_verifier") != "" {
			u.mu.Lock()
			u.verifiers = append(u.verifiers, r.PostForm.Get("code_verifier"))
			u.mu.Unlock()
		}
		if strings.HasSuffix(r.URL.Path, "/authorize") {
			u.mu.Lock()
			u.authorize = append(u.authorize, r.URL.Query())
			u.mu.Unlock()
			if deny := u.denyNext.Swap(nil); deny != nil {
				q := r.URL.Query()
				back, _ := url.Parse(q.Get("redirect_uri"))
				back.RawQuery = url.Values{"error": {*deny}, "state": {q.Get("state")}}.Encode()
				http.Redirect(w, r, back.String(), http.StatusFound)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
