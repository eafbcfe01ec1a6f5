package flow

import (
	"net/http"
	"net/url"

	"github.com/caddy-device-flow/caddy-device-flow/flow/qr"
)

// serveQR draws verification_uri_complete for a user code as a QR image,
// for devices that can show an image but not make one. It reveals nothing
// beyond the user code the caller already has, and looks nothing up: the
// same image for a live code and for a made-up one.
func (s *Service) serveQR(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, "GET, HEAD")
		return
	}
	q := r.URL.Query()
	code := s.cfg.UserCode.Normalize(q.Get("user_code"))
	if code == "" {
		writeOAuthError(w, badRequest(ErrInvalidRequest, "user_code is missing or malformed"))
		return
	}
	format := q.Get("format")
	if format == "" {
		format = "svg"
	}
	if format != "svg" && format != "png" {
		writeOAuthError(w, badRequest(ErrInvalidRequest, "format must be svg or png"))
		return
	}
	display := s.cfg.UserCode.Display(code)
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
