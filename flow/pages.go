package flow

import (
	"bytes"
	"io"
	"net/http"
	"strconv"

	"go.uber.org/zap"
)

// Pages a person sees. Each is a template of the same name plus ".html";
// operators may override any of them.
const (
	PageEnter   = "enter"   // type the code shown on the device
	PageConfirm = "confirm" // check the code, see who asks for what, Approve / Deny
	PageSuccess = "success" // the device is signed in
	PageDenied  = "denied"  // the person or the upstream said no
	PageExpired = "expired" // the code expired or was already used
	PageError   = "error"   // something went wrong; Error says what
	PageTooMany = "toomany" // too many wrong codes from here; RetryAfter says when to try again
	PageTooFar  = "toofar"  // Approve refused: not on the device's network (proximity require)
)

// PageData is everything a page template may show. Every field is plain
// text; templates escape it (html/template).
type PageData struct {
	// UserCode is the code in its display form (BCDF-GHJK); on the entry
	// page it is what the person typed, if anything.
	UserCode   string
	ClientID   string
	ClientName string   // the operator's display name for ClientID (ClientID if none)
	Scopes     []string // what the device asks for
	// CSRF goes into every form as the hidden field "csrf".
	CSRF string
	// FormAction is the URL path the forms post to (fields: csrf,
	// user_code, action = "lookup" | "approve" | "deny").
	FormAction string
	// Error is a message key saying what went wrong (one of ErrorKeys,
	// page_errors.go), "" when nothing did.
	Error string
	// ErrorDetail is an operator-facing detail safe to show (never a secret).
	ErrorDetail string
	// RetryAfter is in seconds (toomany, unavailable).
	RetryAfter int
	// VerificationURIComplete is the link with the code filled in, for a
	// QR code a second screen can scan (confirm page).
	VerificationURIComplete string
	// QRPath is the path of a QR image of VerificationURIComplete.
	QRPath string
	// Where and when the code was asked for (confirm, toofar): the
	// device's network, coarsened ("198.51.100.x", "2001:db8:1234::/48";
	// "" if unknown), its place (nil without a GeoIP database or when the
	// database does not know the address), and how many seconds ago.
	DeviceNetwork string
	DevicePlace   *Place
	AskedAgo      int
	// Proximity is "" when the browser is on the device's network (or the
	// check is off), else the mode: "warn" (Approve still works) or
	// "require" (Approve is refused). BrowserNetwork and BrowserPlace are
	// then where the person is, as DeviceNetwork and DevicePlace.
	Proximity      string
	BrowserNetwork string
	BrowserPlace   *Place
	// StartOver is the path of the entry page.
	StartOver string
	// AcceptLanguage is the request's header, for the renderer to pick a language.
	AcceptLanguage string
}

// Renderer turns a page and its data into HTML. The templates package
// provides the embedded, overridable implementation.
type Renderer interface {
	Render(w io.Writer, page string, data *PageData) error
}

// pageSecurityHeaders are set on every page: no framing (clickjacking of
// the Approve button), no referrer (the code is in the URL), no sniffing,
// nothing loaded from elsewhere.
func pageSecurityHeaders(h http.Header, csp string) {
	h.Set("Content-Security-Policy", csp)
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
}

// renderPage writes one page. It renders into a buffer first so a template
// failure becomes a clean error page rather than half a page.
func (s *Service) renderPage(w http.ResponseWriter, r *http.Request, status int, page string, data *PageData) {
	if data.StartOver == "" {
		data.StartOver = s.paths.Verify
	}
	data.AcceptLanguage = r.Header.Get("Accept-Language")
	var buf bytes.Buffer
	if err := s.cfg.Pages.Render(&buf, page, data); err != nil {
		s.log.Error("rendering page failed", zap.String("page", page), zap.Error(err))
		buf.Reset()
		status = http.StatusInternalServerError
		buf.WriteString("<!doctype html><title>Error</title><p>This page could not be shown. Please try again later.</p>")
	}
	pageSecurityHeaders(w.Header(), s.pageCSP())
	if data.RetryAfter > 0 && (status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests) {
		// Said on the page for the person, and here for proxies and scripts.
		w.Header().Set("Retry-After", strconv.Itoa(data.RetryAfter))
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// renderUnavailable shows the "try again shortly" page for a store failure.
func (s *Service) renderUnavailable(w http.ResponseWriter, r *http.Request, op string, err error) {
	s.storeFailed(op, err)
	s.renderPage(w, r, http.StatusServiceUnavailable, PageError, &PageData{Error: ErrorUnavailable, RetryAfter: 5})
}
