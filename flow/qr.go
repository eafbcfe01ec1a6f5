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
	if s.cfg.BaseURL == "" && len(r.Host) > maxHostLen {
		// The image draws our origin from Host: a long one is a bigger
		// symbol to encode, and no real host name is that long.
		writeOAuthError(w, badRequest(ErrInvalidRequest, "the Host header is too long"))
		return
	}
	if embeddedElsewhere(r) || steeredElsewhere(r) {
		// Another site's page showing the image (it would get nothing:
		// corp) or sending a browser to it: nothing is looked up or
		// counted.
		writeOAuthError(w, &oauthError{status: http.StatusForbidden, Code: ErrInvalidRequest,
			Description: "QR images are for devices and this site's pages"})
		return
	}
	ip := s.clientIP(r)
	if refusal, err := s.mayDrawQR(r.Context(), ip); err != nil {
		s.storeFailed("count QR images", err)
		writeOAuthError(w, unavailable())
		return
	} else if refusal != nil {
		writeOAuthError(w, refusal)
		return
	}
	d, miss, retry := s.findPending(r.Context(), ip, q.Get("user_code"))
	switch miss {
	case missUnavailable:
		writeOAuthError(w, unavailable())
		return
	case missLimited:
		s.cfg.Observer.Event(EventGuessLimited)
		writeOAuthError(w, &oauthError{status: http.StatusTooManyRequests, Code: ErrInvalidRequest,
			Description: "too many wrong user codes; try again later", retryAfter: retry})
		return
	case missUnknown, missLocked:
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

// maxHostLen is the longest Host the QR image draws (a DNS name is at most
// 253 bytes, plus a port).
const maxHostLen = 255
