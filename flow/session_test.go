package flow_test

import (
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
)

const plantedSession = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" // 43 characters, never issued

// A session cookie the server did not issue is replaced, and its CSRF
// token is never shown: a planted cookie gives no login CSRF.
func TestPlantedSessionIsReplaced(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	withPlanted := func(method, body string) (*http.Response, answer) {
		req, _ := http.NewRequest(method, h.srv.URL+"/device", strings.NewReader(body))
		req.AddCookie(&http.Cookie{Name: "device_flow_session", Value: plantedSession})
		if body != "" {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := http.DefaultClient.Do(req)
		return resp, read(t, resp, err)
	}
	resp, page := withPlanted(http.MethodGet, "")
	replaced := false
	for _, c := range resp.Cookies() {
		replaced = replaced || c.Name == "device_flow_session" && c.Value != plantedSession
	}
	if !replaced {
		t.Errorf("the planted session was kept: Set-Cookie %q", resp.Header.Values("Set-Cookie"))
	}
	form := url.Values{"csrf": {formToken(t, page.body)}, "user_code": {wrongCode}, "action": {"lookup"}}
	if _, a := withPlanted(http.MethodPost, form.Encode()); a.status != http.StatusForbidden {
		t.Fatalf("a form with the planted session and the token its page showed: %d, want 403", a.status)
	}
}

// Approve starts a new session: the sign-in is bound to it, not to the
// one the browser had before (which someone may have planted).
func TestApproveRotatesTheSession(t *testing.T) {
	h := newHarness(t, harnessOptions{upstream: true})
	code := h.newCode("198.51.100.1", h.up.ClientID)["user_code"].(string)
	b := personBrowser()
	h.do(b, "", http.MethodGet, "/device", "", "")
	base, _ := url.Parse(h.srv.URL)
	before := b.Jar.Cookies(base)
	var callback string
	h.approve(b, code, func(u string) { callback = u })
	if callback == "" {
		t.Fatal("the IdP did not send the browser back")
	}
	after := b.Jar.Cookies(base)
	if len(before) != 1 || len(after) != 1 || before[0].Value == after[0].Value {
		t.Fatalf("the session was not replaced at Approve: before %v, after %v", before, after)
	}
	// The browser with the session from before Approve (who planted it
	// has it too) cannot complete the sign-in.
	jar, _ := cookiejar.New(nil)
	jar.SetCookies(base, before)
	old := &http.Client{Jar: jar}
	if a := h.do(old, "", http.MethodGet, strings.TrimPrefix(callback, h.srv.URL), "", ""); a.status != http.StatusForbidden {
		t.Fatalf("callback with the session from before Approve: %d, want 403\n%s", a.status, a.body)
	}
}
