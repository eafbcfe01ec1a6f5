package flow_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// Fuzz targets. Without -fuzz they run their seeds (f.Add and
// testdata/fuzz/<Name>/) as ordinary tests; with it, e.g.
//
//	go test -run '^$' -fuzz '^FuzzParseForm$' -fuzztime 60s ./flow
//
// they look for inputs that break the invariants. Found inputs are saved
// under testdata/fuzz and must be committed with the fix.

// FuzzParseForm: the strict form parser accepts exactly the bodies that
// are valid form encoding and name no parameter twice, and never panics.
func FuzzParseForm(f *testing.F) {
	for _, seed := range []string{
		"", "a=1", "a=1&b=2", "a=1&a=2", "a=1&a=1", "%zz=1", "a=%", "a=%2", "a=%e2%82%ac",
		"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&device_code=x&client_id=tv",
		"a;b=1", "&&&", "=", "a", "a=1&&b=2", "a+b=c+d", "\x00=\xff", strings.Repeat("a=1&", 100),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		form, oerr := flow.ParseForm(body)
		want, err := url.ParseQuery(body)
		repeated := false
		for _, v := range want {
			repeated = repeated || len(v) > 1
		}
		switch {
		case err != nil || repeated:
			if oerr == nil {
				t.Fatalf("accepted %q (ParseQuery: %v, repeated: %v)", body, err, repeated)
			}
			if !strings.HasPrefix(oerr.Error(), "invalid_request: ") {
				t.Fatalf("refusal of %q is %q, want invalid_request", body, oerr.Error())
			}
		case oerr != nil:
			t.Fatalf("refused valid %q: %v", body, oerr)
		default:
			for k, v := range want {
				if len(form[k]) != 1 || form[k][0] != v[0] {
					t.Fatalf("%q: %q = %q, want %q", body, k, form[k], v)
				}
			}
		}
	})
}

// FuzzFormEndpoints: whatever arrives at the endpoints that read forms,
// the answer is a 2xx or 4xx, JSON in the RFC 6749 §5.2 shape for the
// device endpoints and a page for people; a POST with a query string is
// always refused.
func FuzzFormEndpoints(f *testing.F) {
	// Refresh grants are relayed; this upstream refuses every one.
	refuser := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"error":"invalid_grant"}`))
	}))
	f.Cleanup(refuser.Close)
	h := newHarness(f, harnessOptions{tokenEndpoint: refuser.URL, configure: withLimits(flow.Limits{IssuePerIP: 50})})
	const form = "application/x-www-form-urlencoded"
	for _, seed := range []struct {
		endpoint        uint8
		query, ct, body string
	}{
		{0, "", form, "client_id=tv&scope=openid"},
		{0, "client_id=tv", form, ""},
		{0, "", "text/plain", "client_id=tv"},
		{0, "", form + "; charset=utf-8", "client_id=tv&client_id=tv"},
		{0, "", form, "client_id=%zz"},
		{0, "", form, "client_id=tv&scope=%22openid%22"},
		{1, "", form, "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&device_code=abc&client_id=tv"},
		{1, "device_code=abc", form, "grant_type=refresh_token&client_id=tv"},
		{1, "", "multipart/form-data; boundary=x", "--x--"},
		{1, "", form, "grant_type=refresh_token&refresh_token=x&client_id=tv"},
		{1, "", "", "\x00\x01\x02"},
		{2, "", form, "csrf=x&user_code=BCDF-GHJK&action=approve"},
		{2, "code=BCDF-GHJK", form, "action=lookup"},
		{2, "", form, "action=%"},
	} {
		f.Add(seed.endpoint, seed.query, seed.ct, seed.body)
	}
	paths := []string{"/device/code", "/device/token", "/device"}
	f.Fuzz(func(t *testing.T, endpoint uint8, query, contentType, body string) {
		path := paths[int(endpoint)%len(paths)]
		req := httptest.NewRequest(http.MethodPost, "http://device.example"+path, strings.NewReader(body))
		req.URL.RawQuery = query
		req.Header.Set("Content-Type", contentType)
		req.Header.Set(testIPHeader, "192.0.2.1")
		rec := httptest.NewRecorder()
		h.svc.ServeHTTP(rec, req)
		status, ct := rec.Code, rec.Header().Get("Content-Type")
		if status >= 500 || status < 200 {
			t.Fatalf("%s %q %q %q: status %d\n%s", path, query, contentType, body, status, rec.Body)
		}
		if path == "/device" {
			if !strings.HasPrefix(ct, "text/html") || (req.URL.RawQuery != "" && status < 400) {
				t.Fatalf("%s %q: %d %s", path, query, status, ct)
			}
			return
		}
		if ct != "application/json" || rec.Header().Get("Cache-Control") != "no-store" {
			t.Fatalf("%s: content type %q, cache %q", path, ct, rec.Header().Get("Cache-Control"))
		}
		var out map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("%s: not JSON: %q", path, rec.Body)
		}
		if status == http.StatusOK {
			if req.URL.RawQuery != "" {
				t.Fatalf("%s accepted parameters in the query %q", path, req.URL.RawQuery)
			}
			return
		}
		code, _ := out["error"].(string)
		if code == "" {
			t.Fatalf("%s %d without an error code: %s", path, status, rec.Body)
		}
		if req.URL.RawQuery != "" && code != flow.ErrInvalidRequest {
			t.Fatalf("%s with a query answered %s, want invalid_request", path, code)
		}
	})
}

// FuzzCallback: whatever comes back to the redirect URI (state, code,
// error, with or without the browser that started), the person gets a
// page, never a 5xx other than 502 for the upstream, and nothing from the
// query reaches the page unescaped. "STATE" in the query stands for the
// state of a fresh, real sign-in started for that input.
func FuzzCallback(f *testing.F) {
	h := newHarness(f, harnessOptions{upstream: true, configure: withLimits(flow.Limits{Off: true})})
	for _, seed := range []struct {
		query       string
		sameBrowser bool
	}{
		{"state=STATE&code=abc", true},
		{"state=STATE&code=abc", false},
		{"state=STATE&error=access_denied", true},
		{"state=STATE&error=server_error&error_description=%3Cscript%3Ealert(1)%3C%2Fscript%3E", true},
		{"state=STATE&error=%3Cimg%20src%3Dx%3E", true},
		{"state=STATE", true},
		{"state=STATE&code=", true},
		{"state=STATE&state=other&code=abc", true},
		{"state=unknown&code=abc", true},
		{"state=&code=abc", false},
		{"code=abc", false},
		{"state=" + strings.Repeat("s", 600), true},
		{"state=%zz", true},
		{"", false},
	} {
		f.Add(seed.query, seed.sameBrowser)
	}
	f.Fuzz(func(t *testing.T, query string, sameBrowser bool) {
		var cookie *http.Cookie
		if strings.Contains(query, "STATE") {
			state, c := freshSignIn(t, h)
			query = strings.ReplaceAll(query, "STATE", url.QueryEscape(state))
			if sameBrowser {
				cookie = c
			}
		}
		req := httptest.NewRequest(http.MethodGet, "http://device.example/auth/redirect", nil)
		req.URL.RawQuery = query
		if cookie != nil {
			req.AddCookie(cookie)
		}
		rec := httptest.NewRecorder()
		h.svc.ServeHTTP(rec, req)
		if rec.Code >= 500 && rec.Code != http.StatusBadGateway {
			t.Fatalf("%q: status %d\n%s", query, rec.Code, rec.Body)
		}
		if !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") || !strings.Contains(rec.Body.String(), `data-page="`) {
			t.Fatalf("%q: not a page: %d %s", query, rec.Code, rec.Body)
		}
		for _, v := range mustParseLoosely(query) {
			for _, s := range v {
				if strings.ContainsAny(s, "<>\"") && len(s) > 3 && strings.Contains(rec.Body.String(), s) {
					t.Fatalf("%q: %q reached the page unescaped", query, s)
				}
			}
		}
	})
}

// freshSignIn starts a real sign-in: a device code, the person's
// confirmation and approval; it returns the state the upstream will
// carry back and the browser's session cookie.
func freshSignIn(t *testing.T, h *harness) (state string, session *http.Cookie) {
	t.Helper()
	serve := func(req *http.Request) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.svc.ServeHTTP(rec, req)
		return rec
	}
	req := httptest.NewRequest(http.MethodPost, "http://device.example/device/code",
		strings.NewReader(url.Values{"client_id": {h.up.ClientID}, "scope": {"openid"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	var auth struct {
		UserCode string `json:"user_code"`
	}
	if rec := serve(req); rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &auth) != nil {
		t.Fatalf("device code: %d %s", rec.Code, rec.Body)
	}
	confirm := serve(httptest.NewRequest(http.MethodGet, "http://device.example/device?code="+url.QueryEscape(auth.UserCode), nil))
	cookies := confirm.Result().Cookies()
	if len(cookies) != 1 {
		t.Fatalf("confirmation page set %d cookies", len(cookies))
	}
	form := url.Values{"csrf": {formToken(t, confirm.Body.String())}, "user_code": {auth.UserCode}, "action": {"approve"}}
	req = httptest.NewRequest(http.MethodPost, "http://device.example/device", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(cookies[0])
	approve := serve(req)
	loc, err := url.Parse(approve.Header().Get("Location"))
	if approve.Code != http.StatusSeeOther || err != nil || loc.Query().Get("state") == "" {
		t.Fatalf("approve: %d %q", approve.Code, approve.Header().Get("Location"))
	}
	return loc.Query().Get("state"), cookies[0]
}

// mustParseLoosely reads a query the way the callback does, keeping what
// parses.
func mustParseLoosely(query string) url.Values {
	v, _ := url.ParseQuery(query)
	return v
}
