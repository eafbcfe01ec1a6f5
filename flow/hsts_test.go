package flow_test

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// What browsers load over HTTPS (pages, the callback, QR images) carries
// Strict-Transport-Security; the device endpoints and the metadata do not
// (their clients ignore it, and the poll path gets no header more), nor
// do answers over plain HTTP (browsers ignore it there); a value the site
// set already (Caddy's header directive) is kept.
func TestHSTS(t *testing.T) {
	tests := []struct {
		name    string
		hsts    string // Config.HSTS
		baseURL string
		tls     bool
		preset  string // set on the response before the flow answers
		want    string
	}{
		{name: "over TLS", hsts: flow.DefaultHSTS, tls: true, want: "max-age=31536000"},
		{name: "plain HTTP", hsts: flow.DefaultHSTS, want: ""},
		{name: "behind a TLS proxy, public over HTTPS", hsts: flow.DefaultHSTS, baseURL: "https://auth.example", want: "max-age=31536000"},
		{name: "public over plain HTTP", hsts: flow.DefaultHSTS, baseURL: "http://auth.example", tls: true, want: ""},
		{name: "configured", hsts: flow.HSTSValue(2*365*24*time.Hour, true, true), tls: true, want: "max-age=63072000; includeSubDomains; preload"},
		{name: "off", hsts: "", tls: true, want: ""},
		{name: "the site's own value wins", hsts: flow.DefaultHSTS, tls: true, preset: "max-age=600; includeSubDomains", want: "max-age=600; includeSubDomains"},
	}
	requests := []struct {
		method, path, body string
		browser            bool
	}{
		{http.MethodGet, "/device", "", true},
		{http.MethodPost, "/device", "csrf=x&user_code=BCDF-GHJK&action=approve", true},
		{http.MethodGet, "/auth/redirect?state=x&code=y", "", true},
		{http.MethodGet, "/device/qr?user_code=BCDF-GHJK", "", true},
		{http.MethodPost, "/device/code", "client_id=tv", false},
		{http.MethodPost, "/device/token", "grant_type=urn:ietf:params:oauth:grant-type:device_code&device_code=x&client_id=tv", false},
		{http.MethodGet, "/.well-known/oauth-authorization-server", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{configure: func(c *flow.Config) {
				c.HSTS, c.BaseURL = tc.hsts, tc.baseURL
			}})
			for _, rq := range requests {
				r := httptest.NewRequest(rq.method, "http://auth.example"+rq.path, strings.NewReader(rq.body))
				if rq.body != "" {
					r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				}
				if tc.tls {
					r.URL.Scheme, r.TLS = "https", &tls.ConnectionState{}
				}
				w := httptest.NewRecorder()
				if tc.preset != "" {
					w.Header().Set("Strict-Transport-Security", tc.preset)
				}
				h.svc.ServeHTTP(w, r)
				want := tc.want
				if !rq.browser && tc.preset == "" {
					want = ""
				}
				if got := w.Header().Get("Strict-Transport-Security"); got != want {
					u, _ := url.Parse(rq.path)
					t.Errorf("%s %s (%d): Strict-Transport-Security %q, want %q", rq.method, u.Path, w.Code, got, want)
				}
			}
		})
	}
}
