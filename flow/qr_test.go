package flow_test

import (
	"net/http"
	"net/url"
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

// A QR image is drawn once per code and format, then served from memory
// until the code ends.
func TestQRImagesAreCached(t *testing.T) {
	h := newHarness(t, harnessOptions{configure: withLimits(flow.Limits{Off: true})})
	draws, stop := flow.CountQRDraws()
	defer stop()
	code := h.newCode("198.51.100.1", "tv")["user_code"].(string)
	for range 20 {
		for _, format := range []string{"png", "svg"} {
			if a := h.qr("192.0.2.1", "", code, format); a.status != http.StatusOK {
				t.Fatalf("%s: %d %s", format, a.status, a.body)
			}
		}
	}
	if n := draws(); n != 2 {
		t.Fatalf("40 requests drew %d images, want 2 (one per format)", n)
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
