package integration

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestFullFlow(t *testing.T) {
	up := startUpstream(t)
	startCaddy(t, siteConfig(t, up, ""))

	tv := newDevice(t, up.Config().ClientID, "openid profile")
	for _, field := range []string{"device_code", "user_code", "verification_uri", "verification_uri_complete"} {
		if s, _ := tv.auth[field].(string); s == "" {
			t.Fatalf("%s missing from %v", field, tv.auth)
		}
	}
	if tv.auth["expires_in"] != float64(600) || tv.auth["interval"] != float64(5) {
		t.Fatalf("expires_in/interval: %v", tv.auth)
	}
	if status, out := tv.poll(); status != 400 || out["error"] != "authorization_pending" {
		t.Fatalf("first poll: %d %v", status, out)
	}

	done := newBrowser(t).approve(tv.userCode())
	if done.status != http.StatusOK || !done.is("success") {
		t.Fatalf("after the upstream: %d %s\n%s", done.status, done.url, done.body)
	}

	status, tokens := tv.pollAfter(5 * time.Second)
	if status != http.StatusOK {
		t.Fatalf("poll after approval: %d %v", status, tokens)
	}
	for _, field := range []string{"access_token", "id_token", "refresh_token", "token_type"} {
		if s, _ := tokens[field].(string); s == "" {
			t.Errorf("%s missing from the token response %v", field, tokens)
		}
	}
	// Delivered once: the next poll finds nothing.
	if status, out := tv.pollAfter(5 * time.Second); status != 400 || out["error"] != "invalid_grant" {
		t.Fatalf("second poll after delivery: %d %v", status, out)
	}
}

func TestDenyAtConfirmation(t *testing.T) {
	up := startUpstream(t)
	startCaddy(t, siteConfig(t, up, ""))
	tv := newDevice(t, up.Config().ClientID, "openid")

	b := newBrowser(t)
	confirm := b.get(tv.auth["verification_uri_complete"].(string))
	if !confirm.is("confirm") || !strings.Contains(confirm.body, "Living-room TV") || !strings.Contains(confirm.body, tv.userCode()) {
		t.Fatalf("confirmation page must show the client and the code:\n%s", confirm.body)
	}
	denied := b.post("/device", url.Values{"csrf": {confirm.csrf(t)}, "user_code": {tv.userCode()}, "action": {"deny"}})
	if !denied.is("denied") {
		t.Fatalf("denied page expected: %d\n%s", denied.status, denied.body)
	}
	if status, out := tv.pollAfter(5 * time.Second); status != 400 || out["error"] != "access_denied" {
		t.Fatalf("poll after deny: %d %v", status, out)
	}
}

func TestExpiry(t *testing.T) {
	up := startUpstream(t)
	startCaddy(t, siteConfig(t, up, "expires_in 2m"))
	tv := newDevice(t, up.Config().ClientID, "openid")
	if tv.auth["expires_in"] != float64(120) {
		t.Fatalf("expires_in: %v", tv.auth["expires_in"])
	}
	b := newBrowser(t)
	entry := b.get(testSite + "/device")
	fakeClock.Advance(2*time.Minute + time.Second)

	// The person is too late: the code is as unknown as a wrong one.
	late := b.post("/device", url.Values{"csrf": {entry.csrf(t)}, "user_code": {tv.userCode()}, "action": {"lookup"}})
	if !late.is("enter") || late.status != http.StatusBadRequest {
		t.Fatalf("expired code must be refused on the entry page: %d\n%s", late.status, late.body)
	}
	if status, out := tv.poll(); status != 400 || out["error"] != "expired_token" {
		t.Fatalf("poll after expiry: %d %v", status, out)
	}
}

func TestSlowDown(t *testing.T) {
	up := startUpstream(t)
	startCaddy(t, siteConfig(t, up, ""))
	tv := newDevice(t, up.Config().ClientID, "openid")
	steps := []struct {
		wait time.Duration
		want string
	}{
		{0, "authorization_pending"},                       // the first poll is never early
		{4200 * time.Millisecond, "authorization_pending"}, // early within the slack (1 s): fine
		{2 * time.Second, "slow_down"},                     // really too fast: interval becomes 10 s
		{6 * time.Second, "slow_down"},                     // 5 s is no longer enough: 15 s now
		{15 * time.Second, "authorization_pending"},        // honouring the new interval
		{14 * time.Second, "authorization_pending"},        // within the slack of 15 s
	}
	for i, st := range steps {
		status, out := tv.pollAfter(st.wait)
		if status != 400 || out["error"] != st.want {
			t.Fatalf("step %d (after %s): %d %v, want %s", i, st.wait, status, out, st.want)
		}
	}
}

func TestWrongClientCannotPoll(t *testing.T) {
	up := startUpstream(t)
	startCaddy(t, siteConfig(t, up, ""))
	tv := newDevice(t, up.Config().ClientID, "openid")
	status, out, _ := postForm(t, "/device/token", url.Values{
		"grant_type":  {"urn:ietf:params:oauth:grant-type:device_code"},
		"device_code": {tv.deviceCode()},
		"client_id":   {"someone-else"},
	})
	if status != 400 || out["error"] != "invalid_client" {
		t.Fatalf("poll with another client_id: %d %v", status, out)
	}
	// An unknown client cannot even start.
	status, out, _ = postForm(t, "/device/code", url.Values{"client_id": {"someone-else"}})
	if status != 400 || out["error"] != "invalid_client" {
		t.Fatalf("unknown client: %d %v", status, out)
	}
	status, out, _ = postForm(t, "/device/code", url.Values{"client_id": {up.Config().ClientID}, "scope": {"openid admin"}})
	if status != 400 || out["error"] != "invalid_scope" {
		t.Fatalf("scope outside the allowed: %d %v", status, out)
	}
}

func TestStateFromAnotherBrowserIsRefused(t *testing.T) {
	up := startUpstream(t)
	startCaddy(t, siteConfig(t, up, ""))
	tv := newDevice(t, up.Config().ClientID, "openid")

	victim := newBrowser(t)
	// Stop at the upstream: do not follow its redirect back.
	victim.client.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if strings.HasSuffix(req.URL.Path, "/auth/redirect") {
			return http.ErrUseLastResponse
		}
		return nil
	}
	resp := victim.approve(tv.userCode())
	if resp.status != http.StatusFound {
		t.Fatalf("expected the upstream's redirect, got %d", resp.status)
	}
	// Find the callback URL the upstream sent the victim to.
	callback := ""
	victim.client.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		callback = req.URL.String()
		return http.ErrUseLastResponse
	}
	_ = callback
	// Instead of the victim, an attacker's browser opens the callback.
	attacker := newBrowser(t)
	attacker.get(testSite + "/device") // has a session of its own
	got := attacker.get(lastRedirect(t, victim, tv))
	if got.status != http.StatusForbidden || !got.is("error") {
		t.Fatalf("callback in another browser: %d\n%s", got.status, got.body)
	}
	if status, out := tv.pollAfter(5 * time.Second); out["error"] != "authorization_pending" {
		t.Fatalf("device must still be pending: %d %v", status, out)
	}
}

// lastRedirect runs the approval again and returns the callback URL the
// upstream redirects to, without following it.
func lastRedirect(t *testing.T, b *browser, tv *device) string {
	t.Helper()
	var loc string
	b.client.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if strings.HasSuffix(req.URL.Path, "/auth/redirect") {
			loc = req.URL.String()
			return http.ErrUseLastResponse
		}
		return nil
	}
	b.approve(tv.userCode())
	if loc == "" {
		t.Fatal("the upstream did not redirect back")
	}
	return loc
}

func TestCallbackReplayIsRefused(t *testing.T) {
	up := startUpstream(t)
	startCaddy(t, siteConfig(t, up, ""))
	tv := newDevice(t, up.Config().ClientID, "openid")
	b := newBrowser(t)
	callback := lastRedirect(t, b, tv)
	b.client.CheckRedirect = nil
	if first := b.get(callback); !first.is("success") {
		t.Fatalf("first callback: %d\n%s", first.status, first.body)
	}
	if again := b.get(callback); again.status != http.StatusBadRequest || !again.is("error") {
		t.Fatalf("replayed callback: %d\n%s", again.status, again.body)
	}
}

func TestFormsWithoutCSRFAreRefused(t *testing.T) {
	up := startUpstream(t)
	startCaddy(t, siteConfig(t, up, ""))
	tv := newDevice(t, up.Config().ClientID, "openid")
	b := newBrowser(t)
	b.get(testSite + "/device")
	for _, csrf := range []string{"", "forged-token"} {
		got := b.post("/device", url.Values{"csrf": {csrf}, "user_code": {tv.userCode()}, "action": {"approve"}})
		if got.status != http.StatusForbidden {
			t.Fatalf("csrf %q: %d\n%s", csrf, got.status, got.body)
		}
	}
	if _, out := tv.pollAfter(5 * time.Second); out["error"] != "authorization_pending" {
		t.Fatalf("device: %v", out)
	}
}

func TestUserCodeIsEscaped(t *testing.T) {
	up := startUpstream(t)
	startCaddy(t, siteConfig(t, up, ""))
	payload := `"><script>alert(1)</script>`
	got := newBrowser(t).get(testSite + "/device?code=" + url.QueryEscape(payload))
	if strings.Contains(got.body, "<script>alert(1)") {
		t.Fatalf("the code was not escaped:\n%s", got.body)
	}
	if got.status != http.StatusBadRequest || !got.is("enter") {
		t.Fatalf("%d\n%s", got.status, got.body)
	}
}

func TestOtherPathsReachTheNextHandler(t *testing.T) {
	up := startUpstream(t)
	tester := startCaddy(t, siteConfig(t, up, ""))
	tester.AssertGetResponse(testSite+"/somewhere/else", 200, "next handler")
	// A wrong method on our own endpoint is ours to answer.
	resp, err := http.Get(testSite + "/device/code")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
		t.Fatalf("GET /device/code: %d Allow=%q", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

func TestConcurrentPollsDeliverOnce(t *testing.T) {
	up := startUpstream(t)
	startCaddy(t, siteConfig(t, up, ""))
	tv := newDevice(t, up.Config().ClientID, "openid")
	if done := newBrowser(t).approve(tv.userCode()); !done.is("success") {
		t.Fatalf("approve: %d", done.status)
	}
	fakeClock.Advance(time.Minute)
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if status, _ := tv.poll(); status == http.StatusOK {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d polls got the tokens, want exactly 1", wins)
	}
}
