package flow

import (
	"crypto/hmac"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"strings"
)

// A person's browser is known by a session cookie the server issued
// (random, under a MAC). Forms carry a
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
// its cookie) when it has none the server issued.
func (s *Service) browserSession(w http.ResponseWriter, r *http.Request) string {
	if v := s.existingSession(r); v != "" {
		return v
	}
	return s.newSession(w, r)
}

// newSession starts a session and sets its cookie, replacing the one the
// browser had. Approve calls it, so that a session planted in the browser
// before (session fixation) is not the one the sign-in is bound to.
func (s *Service) newSession(w http.ResponseWriter, r *http.Request) string {
	random := randomToken(32)
	v := random + "." + s.secrets.sessionMAC(random)
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

// existingSession is the browser's session, or "" when it has none the
// server issued: a session is random.MAC(random), and a value someone
// made up (or planted) fails the MAC.
func (s *Service) existingSession(r *http.Request) string {
	c, err := r.Cookie(s.sessionCookieName(r))
	if err != nil {
		return ""
	}
	random, mac, ok := strings.Cut(c.Value, ".")
	if !ok || len(random) != 43 || !hmac.Equal([]byte(mac), []byte(s.secrets.sessionMAC(random))) {
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
