// Package testupstream runs the upstream authorization server of the
// tests: mockoidc, a real OpenID Connect server library that checks client
// credentials and PKCE, with what it cannot do by itself: send the browser
// back with error=access_denied, as an IdP does when the person says no,
// and tell which PKCE verifiers it was sent (for tests that look for them
// where they must not be).
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

// Upstream is a running mockoidc on a free loopback port.
type Upstream struct {
	*mockoidc.MockOIDC
	denyNext atomic.Pointer[string]

	mu        sync.Mutex
	verifiers []string
}

// Start runs one until the test ends.
func Start(t testing.TB) *Upstream {
	t.Helper()
	m, err := mockoidc.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	u := &Upstream{MockOIDC: m}
	if err := m.AddMiddleware(u.middleware); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ln, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Shutdown() })
	return u
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

func (u *Upstream) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/token") && r.ParseForm() == nil && r.PostForm.Get("code_verifier") != "" {
			u.mu.Lock()
			u.verifiers = append(u.verifiers, r.PostForm.Get("code_verifier"))
			u.mu.Unlock()
		}
		if strings.HasSuffix(r.URL.Path, "/authorize") {
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
