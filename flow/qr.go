package flow

import (
	"net/http"
	"net/url"

	"github.com/caddy-device-flow/caddy-device-flow/flow/qr"
)

// serveQR draws verification_uri_complete for a user code as a QR image,
// for devices that can show an image but not make one. Only a live
// pending code gets one: looking a code up here counts against the guess
// limits like the verification page, so it tells no more about which
// codes are live.
func (s *Service) serveQR(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, "GET, HEAD")
		return
	}
	q := r.URL.Query()
	format := q.Get("format")
	if format == "" {
		format = "svg"
	}
	if format != "svg" && format != "png" {
		writeOAuthError(w, badRequest(ErrInvalidRequest, "format must be svg or png"))
		return
	}
	d, miss, retry := s.findPending(r.Context(), s.clientIP(r), q.Get("user_code"))
	switch miss {
	case missUnavailable:
		writeOAuthError(w, unavailable())
		return
	case missLimited:
		s.cfg.Observer.Event(EventGuessLimited)
		writeOAuthError(w, &oauthError{status: http.StatusTooManyRequests, Code: ErrInvalidRequest,
			Description: "too many wrong user codes; try again later", retryAfter: retry})
		return
	case missUnknown:
		writeOAuthError(w, &oauthError{status: http.StatusNotFound, Code: ErrInvalidRequest,
			Description: "unknown, expired or used user_code"})
		return
	}
	display := s.cfg.UserCode.Display(d.UserCode)
	target := s.baseURL(r) + s.paths.Verify + "?code=" + url.QueryEscape(display)
	body, contentType, err := qr.Image(target, format, 320)
	if err != nil {
		writeOAuthError(w, badRequest(ErrInvalidRequest, "the QR code could not be drawn"))
		return
	}
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}
