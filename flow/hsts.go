package flow

import (
	"net/http"
	"strconv"
	"time"
)

// DefaultHSTS is one year of HTTPS only, for this host alone:
// includeSubDomains would reach every name under the site's domain, which
// is the operator's call, not this handler's.
const DefaultHSTS = "max-age=31536000"

// HSTSValue is a Strict-Transport-Security value (RFC 6797 §6.1).
func HSTSValue(maxAge time.Duration, includeSubdomains, preload bool) string {
	v := "max-age=" + strconv.FormatInt(int64(maxAge/time.Second), 10)
	if includeSubdomains {
		v += "; includeSubDomains"
	}
	if preload {
		v += "; preload"
	}
	return v
}

// setHSTS tells browsers to come back over HTTPS only. It goes on what
// browsers load (the pages, the callback, QR images), not on the device
// endpoints, whose clients ignore it. Over plain HTTP browsers ignore it
// too (RFC 6797 §8.1), so it is sent only when the page is public over
// HTTPS; a value the site set already (Caddy's header directive) is left
// alone.
func (s *Service) setHSTS(w http.ResponseWriter, r *http.Request) {
	if s.cfg.HSTS == "" || !s.isHTTPS(r) {
		return
	}
	if _, set := w.Header()["Strict-Transport-Security"]; !set {
		w.Header()["Strict-Transport-Security"] = []string{s.cfg.HSTS}
	}
}
