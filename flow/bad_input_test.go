package flow_test

import (
	"crypto/rand"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// Bad input of every kind at every endpoint gets a clear 4xx: the device
// endpoints, the QR images and the metadata answer RFC 6749 §5.2 JSON, the
// pages a page; a wrong method says which are allowed, parameters in the
// query string of a POST are refused even next to a valid body, and
// nothing sent reaches a page unescaped. A flow started before still
// completes.
func TestBadInputEverywhere(t *testing.T) {
	h := newHarness(t, harnessOptions{upstream: true})
	clientID := h.up.ClientID
	auth := h.newCode("192.0.2.1", clientID)
	deviceCode, userCode := auth["device_code"].(string), auth["user_code"].(string)
	person := personBrowser()
	confirm := h.openFrom(person, "", userCode)
	if !confirm.isPage("confirm") {
		t.Fatalf("confirmation page: %d", confirm.status)
	}

	const form = "application/x-www-form-urlencoded"
	const script = `"><script>alert(1)</script>`
	huge := "client_id=" + strings.Repeat("a", flow.MaxBodyBytes+10)
	junk := make([]byte, 4096)
	rand.Read(junk)
	grant := "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code"
	const page = "page" // the answer is a page, not JSON
	tests := []struct {
		name, method, path, contentType, body string
		status                                int
		answer                                string // the JSON error, or page
		allow                                 string // the Allow header of a 405
	}{
		{"code: oversized", "POST", "/device/code", form, huge, 413, "invalid_request", ""},
		{"code: bad percent-encoding", "POST", "/device/code", form, "client_id=%zz", 400, "invalid_request", ""},
		{"code: duplicate client_id", "POST", "/device/code", form, "client_id=a&client_id=a", 400, "invalid_request", ""},
		{"code: JSON body", "POST", "/device/code", "application/json", `{"client_id":"` + clientID + `"}`, 400, "invalid_request", ""},
		{"code: no content type", "POST", "/device/code", "", "client_id=" + clientID, 400, "invalid_request", ""},
		{"code: multipart", "POST", "/device/code", "multipart/form-data; boundary=x", "--x\r\n\r\n--x--", 400, "invalid_request", ""},
		{"code: binary junk", "POST", "/device/code", form, string(junk), 400, "invalid_request", ""},
		{"code: bad content type", "POST", "/device/code", "application/x-www-form-urlencoded; ;;=", "client_id=a", 400, "invalid_request", ""},
		{"code: parameters in the query", "POST", "/device/code?client_id=" + clientID, form, "scope=openid", 400, "invalid_request", ""},
		{"code: a query next to a valid body", "POST", "/device/code?scope=openid", form, "client_id=" + clientID, 400, "invalid_request", ""},
		{"code: GET", "GET", "/device/code", "", "", 405, "invalid_request", "POST"},
		{"code: PUT", "PUT", "/device/code", form, "client_id=a", 405, "invalid_request", "POST"},
		{"token: oversized", "POST", "/device/token", form, huge, 413, "invalid_request", ""},
		{"token: bad percent-encoding", "POST", "/device/token", form, grant + "&device_code=%e2%8", 400, "invalid_request", ""},
		{"token: duplicate device_code", "POST", "/device/token", form, grant + "&device_code=a&device_code=b&client_id=" + clientID, 400, "invalid_request", ""},
		{"token: text/plain", "POST", "/device/token", "text/plain", grant, 400, "invalid_request", ""},
		{"token: binary junk", "POST", "/device/token", form, string(junk), 400, "invalid_request", ""},
		{"token: huge device_code", "POST", "/device/token", form, grant + "&client_id=" + clientID + "&device_code=" + strings.Repeat("x", 4000), 400, "invalid_grant", ""},
		{"token: device_code in the query", "POST", "/device/token?device_code=" + deviceCode, form, grant + "&client_id=" + clientID, 400, "invalid_request", ""},
		{"token: a query next to a valid body", "POST", "/device/token?x=1", form, grant + "&device_code=" + deviceCode + "&client_id=" + clientID, 400, "invalid_request", ""},
		{"token: GET", "GET", "/device/token", "", "", 405, "invalid_request", "POST"},
		{"verify: oversized", "POST", "/device", form, "user_code=" + strings.Repeat("B", flow.MaxBodyBytes+10), 413, page, ""},
		{"verify: bad percent-encoding", "POST", "/device", form, "user_code=%zz", 400, page, ""},
		{"verify: duplicate action", "POST", "/device", form, "action=approve&action=deny", 400, page, ""},
		{"verify: binary junk", "POST", "/device", form, string(junk), 400, page, ""},
		{"verify: JSON", "POST", "/device", "application/json", `{}`, 400, page, ""},
		{"verify: no CSRF", "POST", "/device", form, "user_code=BBBB-BBBB&action=approve", 403, page, ""},
		{"verify: markup in the code", "GET", "/device?code=" + url.QueryEscape(script), "", "", 400, page, ""},
		{"verify: DELETE", "DELETE", "/device", "", "", 405, page, "GET, HEAD, POST"},
		// An unreadable query is no code at all: the entry page.
		{"verify: bad query", "GET", "/device?code=%zz%00", "", "", 200, page, ""},
		{"verify: huge code", "GET", "/device?code=" + strings.Repeat("B", 5000), "", "", 400, page, ""},
		{"callback: no state", "GET", "/auth/redirect?code=abc", "", "", 400, page, ""},
		{"callback: bad percent-encoding", "GET", "/auth/redirect?state=%zz&code=%", "", "", 400, page, ""},
		{"callback: unknown state", "GET", "/auth/redirect?state=" + strings.Repeat("s", 43) + "&code=abc", "", "", 400, page, ""},
		{"callback: huge state", "GET", "/auth/redirect?state=" + strings.Repeat("s", 5000), "", "", 400, page, ""},
		{"callback: markup in the state", "GET", "/auth/redirect?code=x&state=" + url.QueryEscape(script), "", "", 400, page, ""},
		{"callback: POST", "POST", "/auth/redirect", form, "state=x", 405, page, "GET, HEAD"},
		{"qr: no code", "GET", "/device/qr", "", "", 404, "invalid_request", ""},
		{"qr: junk code", "GET", "/device/qr?user_code=%00%ff%zz", "", "", 404, "invalid_request", ""},
		{"qr: unknown format", "GET", "/device/qr?user_code=BCDF-GHJK&format=gif", "", "", 400, "invalid_request", ""},
		{"qr: POST", "POST", "/device/qr", form, string(junk), 405, "invalid_request", "GET, HEAD"},
		{"metadata: POST", "POST", "/.well-known/oauth-authorization-server", form, string(junk), 405, "invalid_request", "GET, HEAD"},
		{"metadata: DELETE", "DELETE", "/.well-known/oauth-authorization-server", "", "", 405, "invalid_request", "GET, HEAD"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := h.do(http.DefaultClient, "", tc.method, tc.path, tc.contentType, tc.body)
			if a.status != tc.status || a.header.Get("Allow") != tc.allow {
				t.Fatalf("%d Allow=%q, want %d Allow=%q: %.300s", a.status, a.header.Get("Allow"), tc.status, tc.allow, a.body)
			}
			if tc.answer == page {
				if !strings.HasPrefix(a.header.Get("Content-Type"), "text/html") || !strings.Contains(a.body, `data-page="`) {
					t.Fatalf("not a page: %s %.300s", a.header.Get("Content-Type"), a.body)
				}
			} else if a.header.Get("Content-Type") != "application/json" || a.json(t)["error"] != tc.answer {
				t.Fatalf("want the RFC 6749 error %s: %s %.300s", tc.answer, a.header.Get("Content-Type"), a.body)
			}
			if strings.Contains(a.body, "<script>alert(1)") {
				t.Fatalf("what was sent reached the answer unescaped: %.300s", a.body)
			}
		})
	}

	approve := url.Values{"csrf": {formToken(t, confirm.body)}, "user_code": {userCode}, "action": {"approve"}}
	if done := h.do(person, "", http.MethodPost, "/device", form, approve.Encode()); !done.isPage("success") {
		t.Fatalf("the flow started before the bad input: %d\n%s", done.status, done.body)
	}
	if status, out := h.poll(deviceCode, clientID); status != http.StatusOK {
		t.Fatalf("device: %d %v, want its tokens", status, out)
	}
}
