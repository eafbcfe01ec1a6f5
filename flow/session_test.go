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

// Back to the confirmation page after Approve, and Approve again: the
// page says it was already used (Approve replaced the session it was
// shown under), not that it was open too long, and offers the code to
// start again. A form without the browser's session still hears "csrf".
func TestApproveAgainAfterBack(t *testing.T) {
	tests := []struct {
		name       string
		completed  bool // the sign-in finished before Back
		freshJar   bool // a browser without our session posts the old form
		emptyToken bool // the form has no token at all
		want       string
	}{
		{name: "after signing in", completed: true, want: "This page was already used"},
		{name: "while signing in", want: "This page was already used"},
		{name: "from a browser without the session", completed: true, freshJar: true, want: "open for too long"},
		{name: "a form without a token", completed: true, emptyToken: true, want: "open for too long"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{upstream: true})
			code := h.newCode("198.51.100.1", h.up.ClientID)["user_code"].(string)
			b := personBrowser()
			confirm := h.do(b, "", http.MethodGet, "/device?code="+url.QueryEscape(code), "", "")
			form := url.Values{"csrf": {formToken(t, confirm.body)}, "user_code": {code}, "action": {"approve"}}
			var stop func(string)
			if !tc.completed {
				stop = func(string) {}
			}
			if done := h.approve(b, code, stop); tc.completed && !done.isPage("success") {
				t.Fatalf("the first Approve: %d\n%s", done.status, done.body)
			}
			if tc.freshJar {
				b = personBrowser()
			}
			if tc.emptyToken {
				form.Set("csrf", "")
			}
			again := h.do(b, "", http.MethodPost, "/device", "application/x-www-form-urlencoded", form.Encode())
			if again.status != http.StatusForbidden || !again.isPage("enter") || !strings.Contains(again.body, tc.want) {
				t.Fatalf("Approve again: %d, want 403 on the entry page saying %q:\n%s", again.status, tc.want, again.body)
			}
			if !strings.Contains(again.body, `value="`+code+`"`) {
				t.Errorf("the entry page does not offer the code %s to start again:\n%s", code, again.body)
			}
		})
	}
}
