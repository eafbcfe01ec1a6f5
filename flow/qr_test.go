package flow_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

func (h *harness) qr(ip, host, userCode, format string) answer {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.srv.URL+"/device/qr?format="+format+"&user_code="+url.QueryEscape(userCode), nil)
	req.Header.Set(testIPHeader, ip)
	if host != "" {
		req.Host = host
	}
	resp, err := http.DefaultClient.Do(req)
	return read(h.t, resp, err)
}

// /device/qr draws verification_uri_complete of a live code, however it
// was typed, as SVG (the default) or PNG; anything else is one answer.
// The confirmation page shows it.
func TestQREndpoint(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	code := h.newCode("198.51.100.1", "tv")["user_code"].(string)
	tests := []struct {
		name, query string
		status      int
		contentType string
		prefix      string // of the body
	}{
		{"png", "user_code=" + code + "&format=png", 200, "image/png", "\x89PNG\r\n\x1a\n"},
		{"svg", "user_code=" + code + "&format=svg", 200, "image/svg+xml", "<?xml"},
		{"svg by default", "user_code=" + code, 200, "image/svg+xml", "<?xml"},
		{"as typed", "user_code=" + strings.ToLower(strings.ReplaceAll(code, "-", "")), 200, "image/svg+xml", "<?xml"},
		// Only a live code gets an image: the rest is one answer, counted
		// as a wrong guess like on the verification page.
		{"unknown code", "user_code=BCDF-GHJK", 404, "application/json", `{"error":"invalid_request"`},
		{"malformed code", "user_code=" + url.QueryEscape("<not a code>"), 404, "application/json", `{"error":"invalid_request"`},
		{"no code", "", 404, "application/json", `{"error":"invalid_request"`},
		{"unknown format", "user_code=" + code + "&format=gif", 400, "application/json", `{"error":"invalid_request"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := h.do(http.DefaultClient, "192.0.2.1", http.MethodGet, "/device/qr?"+tc.query, "", "")
			if a.status != tc.status || a.header.Get("Content-Type") != tc.contentType || !strings.HasPrefix(a.body, tc.prefix) {
				t.Fatalf("%d %s %.60q, want %d %s %q…", a.status, a.header.Get("Content-Type"), a.body, tc.status, tc.contentType, tc.prefix)
			}
		})
	}

	confirm := h.lookup("192.0.2.1", code)
	m := regexp.MustCompile(`<figure class="qr">\s*<img src="([^"]+)"`).FindStringSubmatch(confirm.body)
	if !confirm.isPage("confirm") || m == nil {
		t.Fatalf("no QR image on the confirmation page:\n%s", confirm.body)
	}
	src := strings.ReplaceAll(m[1], "&amp;", "&")
	if img := h.do(http.DefaultClient, "192.0.2.1", http.MethodGet, src, "", ""); img.status != http.StatusOK || img.header.Get("Content-Type") != "image/svg+xml" {
		t.Fatalf("the page's QR image %q: %d %s", src, img.status, img.header.Get("Content-Type"))
	}
}

// A code's QR image, in both formats, as often as asked, until the code
// ends.
func TestQRImageUntilTheCodeEnds(t *testing.T) {
	h := newHarness(t, harnessOptions{configure: withLimits(flow.Limits{Off: true})})
	code := h.newCode("198.51.100.1", "tv")["user_code"].(string)
	for range 3 {
		for _, format := range []string{"png", "svg"} {
			if a := h.qr("192.0.2.1", "", code, format); a.status != http.StatusOK {
				t.Fatalf("%s: %d %s", format, a.status, a.body)
			}
		}
	}
	h.clock.Advance(flow.DefaultExpiresIn)
	if a := h.qr("192.0.2.1", "", code, "png"); a.status != http.StatusNotFound {
		t.Fatalf("after the code expired: %d", a.status)
	}
}

// The image's origin comes from Host when base_url is not set: a Host
// longer than any real one is refused before anything is drawn.
func TestQRRefusesALongHost(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	code := h.newCode("198.51.100.1", "tv")["user_code"].(string)
	a := h.qr("192.0.2.1", strings.Repeat("a", 300)+".example", code, "png")
	if a.status != http.StatusBadRequest || a.json(t)["error"] != flow.ErrInvalidRequest {
		t.Fatalf("a 300-byte Host: %d %s", a.status, a.body)
	}
}

// QR images are limited per address, right codes included.
func TestQRLimitPerAddress(t *testing.T) {
	h := newHarness(t, harnessOptions{configure: withLimits(flow.Limits{QRPerIP: 3})})
	code := h.newCode("198.51.100.1", "tv")["user_code"].(string)
	for range 3 {
		if a := h.qr("192.0.2.1", "", code, "svg"); a.status != http.StatusOK {
			t.Fatalf("within the limit: %d", a.status)
		}
	}
	if a := h.qr("192.0.2.1", "", code, "svg"); a.status != http.StatusTooManyRequests || a.header.Get("Retry-After") == "" {
		t.Fatalf("past the limit: %d Retry-After=%q", a.status, a.header.Get("Retry-After"))
	}
	if a := h.qr("192.0.2.2", "", code, "svg"); a.status != http.StatusOK {
		t.Fatalf("another address: %d", a.status)
	}
}
