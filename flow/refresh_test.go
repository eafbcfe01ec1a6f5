package flow_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// refreshUpstream is a token endpoint that records what the relay sends
// and answers with tokens, after release is closed when one is given.
type refreshUpstream struct {
	*httptest.Server
	mu      sync.Mutex
	forms   []url.Values
	arrived chan struct{}
	release chan struct{}
}

func startRefreshUpstream(t *testing.T, blocking bool) *refreshUpstream {
	u := &refreshUpstream{arrived: make(chan struct{}, 100_000)}
	if blocking {
		u.release = make(chan struct{})
	}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		u.mu.Lock()
		u.forms = append(u.forms, r.PostForm)
		u.mu.Unlock()
		u.arrived <- struct{}{}
		if u.release != nil {
			<-u.release
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"access_token":"at","token_type":"Bearer"}`))
	}))
	t.Cleanup(u.Close)
	return u
}

func refreshHarness(t *testing.T, up *refreshUpstream, l flow.Limits) *harness {
	return newHarness(t, harnessOptions{tokenEndpoint: up.URL, configure: func(c *flow.Config) {
		c.Clients = map[string]flow.Client{"tv": {Secret: "s3cret", Scopes: []string{"openid", "profile"}}}
		c.Limits = l
	}})
}

func refresh(extra url.Values) url.Values {
	f := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"rt"}, "client_id": {"tv"}}
	for k, v := range extra {
		f[k] = v
	}
	return f
}

// The relay attaches the client secret, so it applies the client's scope
// rules like /device/code, and refuses parameters it has no use for.
func TestRefreshAppliesScopeRules(t *testing.T) {
	up := startRefreshUpstream(t, false)
	h := refreshHarness(t, up, flow.Limits{})
	for _, tc := range []struct {
		name  string
		extra url.Values
		error string
	}{
		{"scope not allowed", url.Values{"scope": {"openid admin"}}, flow.ErrInvalidScope},
		{"bad scope characters", url.Values{"scope": {"openid\"x"}}, flow.ErrInvalidScope},
		{"another grant's code", url.Values{"code": {"abc"}}, flow.ErrInvalidRequest},
		{"a client secret", url.Values{"client_secret": {"x"}}, flow.ErrInvalidRequest},
	} {
		a := h.post("192.0.2.1", "/device/token", refresh(tc.extra))
		if a.status != http.StatusBadRequest || a.json(t)["error"] != tc.error {
			t.Errorf("%s: %d %s, want 400 %s", tc.name, a.status, a.body, tc.error)
		}
	}
	if len(up.forms) != 0 {
		t.Fatalf("refused refreshes reached the upstream: %v", up.forms)
	}
	if a := h.post("192.0.2.1", "/device/token", refresh(url.Values{"scope": {"openid"}})); a.status != http.StatusOK {
		t.Fatalf("an allowed scope: %d %s", a.status, a.body)
	}
	if a := h.post("192.0.2.1", "/device/token", refresh(nil)); a.status != http.StatusOK {
		t.Fatalf("no scope: %d %s", a.status, a.body)
	}
	if got := up.forms[0].Get("scope"); got != "openid" {
		t.Errorf("scope sent on: %q", got)
	}
	if up.forms[1].Has("scope") {
		t.Errorf("no scope asked, but %q sent on (RFC 6749 §6: the scope first granted)", up.forms[1].Get("scope"))
	}
}

// Refreshes are limited per address, with 429 and Retry-After; limits
// off lifts the limit.
func TestRefreshLimits(t *testing.T) {
	up := startRefreshUpstream(t, false)
	h := refreshHarness(t, up, flow.Limits{RefreshPerIP: 2})
	for range 2 {
		if a := h.post("192.0.2.1", "/device/token", refresh(nil)); a.status != http.StatusOK {
			t.Fatalf("within the limit: %d %s", a.status, a.body)
		}
	}
	a := h.post("192.0.2.1", "/device/token", refresh(nil))
	if a.status != http.StatusTooManyRequests || a.header.Get("Retry-After") == "" {
		t.Fatalf("past the limit: %d Retry-After=%q %s", a.status, a.header.Get("Retry-After"), a.body)
	}
	if a := h.post("192.0.2.2", "/device/token", refresh(nil)); a.status != http.StatusOK {
		t.Fatalf("another address: %d %s", a.status, a.body)
	}

	off := refreshHarness(t, startRefreshUpstream(t, false), flow.Limits{RefreshPerIP: 1, Off: true})
	for range 3 {
		if a := off.post("192.0.2.1", "/device/token", refresh(nil)); a.status != http.StatusOK {
			t.Fatalf("limits off: %d %s", a.status, a.body)
		}
	}
}

// relays sends n refreshes from each address and says how many were
// answered 200 and how many 429.
func (h *harness) relays(ips []string, n int) (ok, refused int) {
	h.t.Helper()
	for _, ip := range ips {
		for range n {
			switch a := h.post(ip, "/device/token", refresh(nil)); a.status {
			case http.StatusOK:
				ok++
			case http.StatusTooManyRequests:
				refused++
			default:
				h.t.Fatalf("a refresh from %s: %d %s", ip, a.status, a.body)
			}
		}
	}
	return ok, refused
}

func (u *refreshUpstream) calls() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.forms)
}

// No one flooding the relay keeps a device elsewhere from refreshing, and
// the junk past the limits never reaches the upstream: a /56's /64s are
// held to 4 × refresh_limit, a /48's to 16 ×; once a client_id's total
// (100 × refresh_limit) is spent, every address is held to 20 a window,
// which a device refreshing normally never reaches.
func TestRefreshFloodsShutNoDeviceOut(t *testing.T) {
	const per = 10 // refresh_limit: the client's total is 1,000
	for _, tc := range []struct {
		name    string
		flood   []string
		relayed int // of the flood's per × len(flood) refreshes
	}{
		{"100 /64s of one /56", addresses("2001:db8:0:%x::1", 100), 4 * per},
		{"100 /56s of one /48", addresses("2001:db8:1:%x00::1", 100), 16 * per},
		{"100 IPv4 addresses", addresses("203.0.113.%d", 100), 100 * per},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := startRefreshUpstream(t, false)
			h := refreshHarness(t, up, flow.Limits{RefreshPerIP: per})
			if ok, _ := h.relays(tc.flood, per); ok != tc.relayed || up.calls() != tc.relayed {
				t.Fatalf("the flood: %d relayed, %d reached the upstream; want %d", ok, up.calls(), tc.relayed)
			}
			// Again: nothing more gets through from the flooding addresses.
			if ok, _ := h.relays(tc.flood, 1); ok != 0 || up.calls() != tc.relayed {
				t.Fatalf("the flood again: %d relayed, %d reached the upstream; want none more", ok, up.calls())
			}
			// A device refreshing from its own address, five times in the window.
			if ok, refused := h.relays([]string{"192.0.2.1"}, 5); refused != 0 {
				t.Fatalf("a device elsewhere: %d refused of %d", refused, ok+refused)
			}
			if ok, refused := h.relays([]string{"2001:db8:ffff::1"}, 5); refused != 0 {
				t.Fatalf("an IPv6 device elsewhere: %d refused of %d", refused, ok+refused)
			}
		})
	}
}

// Past the client's total, fresh addresses get 20 relays each and no more
// (IPv6 /56s and /48s 80 and 320): the junk a flood from more addresses can
// still send the upstream grows by that much per address.
func TestRefreshClientTotalSpent(t *testing.T) {
	up := startRefreshUpstream(t, false)
	h := refreshHarness(t, up, flow.Limits{RefreshPerIP: 2}) // the client's total: 200
	if ok, _ := h.relays(addresses("203.0.113.%d", 100), 2); ok != 200 {
		t.Fatalf("spending the total: %d relayed", ok)
	}
	for _, tc := range []struct {
		name    string
		ips     []string
		relayed int
	}{
		{"a fresh IPv4 address", []string{"192.0.2.1"}, 2}, // refresh_limit 2 is below 20
		{"an address that spent the total", []string{"203.0.113.1"}, 0},
	} {
		if ok, _ := h.relays(tc.ips, 10); ok != tc.relayed {
			t.Errorf("%s: %d relayed, want %d", tc.name, ok, tc.relayed)
		}
	}

	up = startRefreshUpstream(t, false)
	h = refreshHarness(t, up, flow.Limits{RefreshPerIP: 25}) // the client's total: 2,500
	if ok, _ := h.relays(addresses("203.0.113.%d", 100), 25); ok != 2500 {
		t.Fatalf("spending the total: %d relayed", ok)
	}
	// Refused relays count too, so each address here sends no more than
	// it may, to show the prefixes' shares whole.
	for _, tc := range []struct {
		name    string
		ips     []string
		each    int
		relayed int
	}{
		{"a fresh IPv4 address", []string{"192.0.2.1"}, 25, 20},
		{"10 /64s of one /56", addresses("2001:db8:0:%x::1", 10), 20, 80},
		{"50 /56s of one /48", addresses("2001:db8:1:%x00::1", 50), 20, 320},
	} {
		if ok, _ := h.relays(tc.ips, tc.each); ok != tc.relayed {
			t.Errorf("%s: %d relayed, want %d", tc.name, ok, tc.relayed)
		}
	}
	if got := up.calls(); got != 2500+20+80+320 {
		t.Errorf("%d refreshes reached the upstream, want %d", got, 2500+20+80+320)
	}
}

// A slow upstream holds at most RefreshInFlight relays; the rest hear
// 503 with Retry-After at once instead of piling up.
func TestRefreshInFlightBound(t *testing.T) {
	up := startRefreshUpstream(t, true)
	h := refreshHarness(t, up, flow.Limits{RefreshInFlight: 2, RefreshPerIP: 100})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.post("192.0.2.1", "/device/token", refresh(nil))
		}()
	}
	<-up.arrived
	<-up.arrived
	a := h.post("192.0.2.1", "/device/token", refresh(nil))
	if a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") == "" || a.json(t)["error"] != flow.ErrTemporarilyUnavail {
		t.Errorf("a third relay while two wait: %d Retry-After=%q %s", a.status, a.header.Get("Retry-After"), a.body)
	}
	close(up.release)
	wg.Wait()
	if a := h.post("192.0.2.1", "/device/token", refresh(nil)); a.status != http.StatusOK {
		t.Errorf("after the upstream answered: %d %s", a.status, a.body)
	}
}

// The relay against a real upstream (mockoidc, which insists on the
// client secret only the flow holds): a refresh token from the flow is
// relayed with the secret added, the upstream's own refusal reaches the
// device as it said it, and what the flow refuses itself never reaches
// the upstream. The client_id may come as the HTTP Basic user with an
// empty password, as golang.org/x/oauth2 sends it.
func TestRefreshRelay(t *testing.T) {
	recorder := &faultyTokenEndpoint{} // passes everything on, keeping the forms
	recorderSrv := httptest.NewServer(recorder)
	t.Cleanup(recorderSrv.Close)
	h := newHarness(t, harnessOptions{upstream: true, tokenEndpoint: recorderSrv.URL + "/token"})
	recorder.real = h.up.TokenEndpoint()
	clientID := h.up.ClientID
	auth := h.newCode("192.0.2.1", clientID)
	if done := h.approve(personBrowser(), auth["user_code"].(string), nil); !done.isPage("success") {
		t.Fatalf("sign-in: %d\n%s", done.status, done.body)
	}
	status, tokens := h.poll(auth["device_code"].(string), clientID)
	rt, _ := tokens["refresh_token"].(string)
	if status != http.StatusOK || rt == "" {
		t.Fatalf("poll: %d %v, want tokens with a refresh token", status, tokens)
	}
	recorder.takeForms()

	tests := []struct {
		name    string
		form    url.Values
		basic   string // the HTTP Basic user, form-encoded, empty password
		status  int
		error   string // "" for a token response
		relayed bool
	}{
		{name: "the flow's refresh token", form: url.Values{"refresh_token": {rt}, "client_id": {clientID}}, status: http.StatusOK, relayed: true},
		{name: "a narrower scope", form: url.Values{"refresh_token": {rt}, "client_id": {clientID}, "scope": {"openid"}}, status: http.StatusOK, relayed: true},
		// mockoidc's own answer: 401 invalid_request.
		{name: "refused by the upstream", form: url.Values{"refresh_token": {"not-a-refresh-token"}, "client_id": {clientID}}, status: http.StatusUnauthorized, error: flow.ErrInvalidRequest, relayed: true},
		{name: "client not allowed", form: url.Values{"refresh_token": {rt}, "client_id": {"someone-else"}}, status: http.StatusBadRequest, error: flow.ErrInvalidClient},
		{name: "no refresh token", form: url.Values{"client_id": {clientID}}, status: http.StatusBadRequest, error: flow.ErrInvalidRequest},
		{name: "client_id by HTTP Basic", form: url.Values{"refresh_token": {rt}}, basic: clientID, status: http.StatusOK, relayed: true},
		{name: "HTTP Basic and client_id disagree", form: url.Values{"refresh_token": {rt}, "client_id": {clientID}}, basic: "someone-else", status: http.StatusBadRequest, error: flow.ErrInvalidRequest},
		{name: "unknown client by HTTP Basic", form: url.Values{"refresh_token": {rt}}, basic: "someone-else", status: http.StatusUnauthorized, error: flow.ErrInvalidClient},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.form.Set("grant_type", "refresh_token")
			req, err := http.NewRequest(http.MethodPost, h.srv.URL+"/device/token", strings.NewReader(tc.form.Encode()))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set(testIPHeader, "192.0.2.1")
			if tc.basic != "" {
				req.SetBasicAuth(url.QueryEscape(tc.basic), "")
			}
			resp, err := http.DefaultClient.Do(req)
			a := read(t, resp, err)
			out := a.json(t)
			switch {
			case a.status != tc.status:
				t.Errorf("%d %s, want %d", a.status, a.body, tc.status)
			case tc.error == "" && out["access_token"] == nil:
				t.Errorf("no access_token in %s", a.body)
			case tc.error != "" && out["error"] != tc.error:
				t.Errorf("error %v, want %s: %s", out["error"], tc.error, a.body)
			case a.status == http.StatusUnauthorized && tc.error == flow.ErrInvalidClient && a.header.Get("WWW-Authenticate") == "":
				t.Errorf("401 invalid_client without WWW-Authenticate")
			}
			sent := recorder.takeForms()
			switch {
			case !tc.relayed && len(sent) != 0:
				t.Errorf("refused by the flow, yet relayed: %v", sent)
			case tc.relayed && len(sent) != 1:
				t.Errorf("%d requests reached the upstream, want 1", len(sent))
			case tc.relayed && (sent[0].Get("client_secret") != h.up.ClientSecret || sent[0].Get("client_id") != clientID || sent[0].Get("refresh_token") != tc.form.Get("refresh_token")):
				t.Errorf("relayed without the client's credentials or the refresh token: %v", sent[0])
			}
		})
	}
}
