package flow_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
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
	u := &refreshUpstream{arrived: make(chan struct{}, 1000)}
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

// Refreshes are limited per address and per client_id, with 429 and
// Retry-After; limits off lifts the limit.
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
	// The client's allowance is 100 addresses' worth: 200 here, 2 used.
	refused := 0
	for i := range 250 {
		ip := fmt.Sprintf("198.51.%d.%d", i/200, i%200)
		if a := h.post(ip, "/device/token", refresh(nil)); a.status == http.StatusTooManyRequests {
			refused++
		}
	}
	if refused != 52 {
		t.Errorf("%d of 250 refreshes from fresh addresses were refused, want 52 (client limit 200)", refused)
	}

	off := refreshHarness(t, startRefreshUpstream(t, false), flow.Limits{RefreshPerIP: 1, Off: true})
	for range 3 {
		if a := off.post("192.0.2.1", "/device/token", refresh(nil)); a.status != http.StatusOK {
			t.Fatalf("limits off: %d %s", a.status, a.body)
		}
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
