package flow

import (
	"crypto/hmac"
	"crypto/rand"
	"encoding/base64"
	"net/http"
)

// A person's browser is known by a random session cookie. Forms carry a
// CSRF token derived from it (HMAC under the server secret, so nothing is
// stored per browser), and the upstream round trip is bound to it: a
// callback that comes back to another browser is refused.

const (
	cookieName       = "device_flow_session"
	secureCookieName = "__Host-device_flow_session" // over HTTPS: no Domain, Path=/, Secure
)

func (s *Service) sessionCookieName(r *http.Request) string {
	if s.isHTTPS(r) {
		return secureCookieName
	}
	return cookieName
}

// browserSession returns the browser's session, starting one (and setting
// its cookie) when it has none.
func (s *Service) browserSession(w http.ResponseWriter, r *http.Request) string {
	if v := s.existingSession(r); v != "" {
		return v
	}
	v := randomToken(32)
	http.SetCookie(w, &http.Cookie{
		Name:     s.sessionCookieName(r),
		Value:    v,
		Path:     "/",
		HttpOnly: true,
		Secure:   s.isHTTPS(r),
		SameSite: http.SameSiteLaxMode, // Lax: the upstream's redirect back is a top-level GET
	})
	return v
}

// existingSession is the browser's session, or "" when it has no valid one.
func (s *Service) existingSession(r *http.Request) string {
	c, err := r.Cookie(s.sessionCookieName(r))
	if err != nil || len(c.Value) != 43 { // 32 bytes, base64url
		return ""
	}
	return c.Value
}

// validCSRF checks a form's token against the browser's session.
func (s *Service) validCSRF(r *http.Request, token string) bool {
	session := s.existingSession(r)
	if session == "" || token == "" {
		return false
	}
	return hmac.Equal([]byte(token), []byte(s.secrets.csrfToken(session)))
}

// randomToken is a URL-safe random string of n bytes of entropy.
func randomToken(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
