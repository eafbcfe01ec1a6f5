package integration

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddy-device-flow/caddy-device-flow/storage/redisstore/redistest"
)

// Faults with a real redis-server behind the in-process Caddy: Redis stops
// mid-flow or is down when Caddy starts. Every endpoint must answer 503 with
// Retry-After (RFC 6749 JSON for the device, a page for the person), never
// a 500 or a panic, and the flow must complete once Redis is back.

// redisStorage is the storage line for a Redis at url, under a key prefix of
// this test's own, so tests sharing a server never see each other's keys.
func redisStorage(url string) string {
	return redisStorageWithPrefix(url, newKeyPrefix())
}

func newKeyPrefix() string {
	var b [4]byte
	rand.Read(b[:])
	return "e2e" + hex.EncodeToString(b[:]) + ":"
}

func redisStorageWithPrefix(url, prefix string) string {
	return "redis " + url + " {\n\t\t\tkey_prefix " + prefix + "\n\t\t}"
}

// unavailableCheck is one request made while Redis is down.
type unavailableCheck struct {
	name   string
	device bool // JSON for a device; otherwise a page for a person
	do     func() *http.Response
}

// unavailableChecks covers every endpoint and path that touches the store.
// confirm is a confirmation page the browser b got while Redis was up.
func unavailableChecks(t *testing.T, clientID string, tv *device, b *browser, confirmCSRF string) []unavailableCheck {
	postDevice := func(path string, form url.Values) func() *http.Response {
		return func() *http.Response {
			resp, err := http.PostForm(testSite+path, form)
			if err != nil {
				t.Fatal(err)
			}
			return resp
		}
	}
	person := func(method, path string, form url.Values) func() *http.Response {
		return func() *http.Response {
			var (
				resp *http.Response
				err  error
			)
			if method == http.MethodGet {
				resp, err = b.client.Get(testSite + path)
			} else {
				resp, err = b.client.PostForm(testSite+path, form)
			}
			if err != nil {
				t.Fatal(err)
			}
			return resp
		}
	}
	code := tv.userCode()
	return []unavailableCheck{
		{"device code", true, postDevice("/device/code", url.Values{"client_id": {clientID}, "scope": {"openid"}})},
		{"token poll", true, postDevice("/device/token", url.Values{
			"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {tv.deviceCode()}, "client_id": {clientID}})},
		{"verification_uri_complete", false, person(http.MethodGet, "/device?code="+url.QueryEscape(code), nil)},
		{"lookup (303 to the confirmation page)", false, person(http.MethodPost, "/device", url.Values{"csrf": {confirmCSRF}, "user_code": {code}, "action": {"lookup"}})},
		{"approve", false, person(http.MethodPost, "/device", url.Values{"csrf": {confirmCSRF}, "user_code": {code}, "action": {"approve"}})},
		{"deny", false, person(http.MethodPost, "/device", url.Values{"csrf": {confirmCSRF}, "user_code": {code}, "action": {"deny"}})},
		{"upstream callback", false, person(http.MethodGet, "/auth/redirect?state=BCDFGHJK.s0me-state&code=s0me-code", nil)},
	}
}

// untilAvailable repeats a request while it answers 503, as a device told
// Retry-After would: right after a restart the Redis client may need up to
// a second to notice that Redis is back. It gives up after 10 s.
func untilAvailable(t *testing.T, request func() (int, map[string]any)) (int, map[string]any) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, out := request()
		if status != http.StatusServiceUnavailable || time.Now().After(deadline) {
			return status, out
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// expectUnavailable runs the checks and wants 503 + Retry-After from each.
func expectUnavailable(t *testing.T, checks []unavailableCheck) {
	t.Helper()
	for _, c := range checks {
		resp := c.do()
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s with Redis down: %d, Retry-After %q\n%s", c.name, resp.StatusCode, resp.Header.Get("Retry-After"), body)
			continue
		}
		if c.device {
			var out map[string]any
			if err := json.Unmarshal(body, &out); err != nil || out["error"] != "temporarily_unavailable" {
				t.Errorf("%s with Redis down: want RFC 6749 JSON temporarily_unavailable, got %s", c.name, body)
			}
			continue
		}
		p := page{status: resp.StatusCode, body: string(body)}
		if !p.is("error") || !strings.Contains(p.body, "temporarily unavailable") {
			t.Errorf("%s with Redis down: want the error page saying the service is temporarily unavailable, got\n%s", c.name, body)
		}
	}
}

// TestRedisOutageMidFlow: Redis goes away between the code and the
// approval; while it is away every endpoint answers 503; it comes back
// (append-only file: the pending code survives) and the flow completes.
func TestRedisOutageMidFlow(t *testing.T) {
	for _, outage := range []struct {
		name string
		stop func(*redistest.Server)
	}{
		{"graceful stop", (*redistest.Server).Stop},
		{"crash", (*redistest.Server).Kill},
	} {
		t.Run(outage.name, func(t *testing.T) {
			srv := redistest.Start(t, redistest.AppendOnly())
			up := startUpstream(t)
			startCaddy(t, siteConfigStorage(t, up, redisStorage(srv.URL), ""))
			clientID := up.Config().ClientID

			// The device first polls once Redis is back: a poll now, a
			// moment before, would make that one early (slow_down).
			tv := newDevice(t, clientID, "openid profile")
			b := newBrowser(t)
			confirm := b.get(tv.auth["verification_uri_complete"].(string))
			if !confirm.is("confirm") {
				t.Fatalf("confirmation page expected:\n%s", confirm.body)
			}

			before := scrapeMetrics(t)
			if before["caddy_device_flow_redis_duration_seconds_count"] < 3 {
				t.Errorf("Redis round trips timed before the outage: %v, want at least 3", before["caddy_device_flow_redis_duration_seconds_count"])
			}
			outage.stop(srv)
			expectUnavailable(t, unavailableChecks(t, clientID, tv, b, confirm.csrf(t)))
			if failed := scrapeMetrics(t)["caddy_device_flow_redis_errors_total"] - before["caddy_device_flow_redis_errors_total"]; failed < 1 {
				t.Errorf("caddy_device_flow_redis_errors_total grew by %v during the outage, want at least 1", failed)
			}

			srv.Restart()
			if status, out := untilAvailable(t, func() (int, map[string]any) { return tv.poll() }); status != 400 || out["error"] != "authorization_pending" {
				t.Fatalf("poll after Redis is back: the pending code must have survived: %d %v", status, out)
			}
			if done := b.approve(tv.userCode()); done.status != http.StatusOK || !done.is("success") {
				t.Fatalf("approve after Redis is back: %d\n%s", done.status, done.body)
			}
			status, tokens := tv.poll()
			if status != http.StatusOK || tokens["access_token"] == nil {
				t.Fatalf("tokens after Redis is back: %d %v", status, tokens)
			}
			if status, out := tv.poll(); status != 400 || out["error"] != "invalid_grant" {
				t.Fatalf("second delivery: %d %v", status, out)
			}
		})
	}
}

// TestRedisDownAtStart: Caddy starts although Redis is down (it is not a
// configuration error), answers 503 meanwhile, including the person's pages
// that need the server secret kept in Redis, and works once Redis is up.
func TestRedisDownAtStart(t *testing.T) {
	srv := redistest.Start(t, redistest.AppendOnly())
	srv.Stop()
	up := startUpstream(t)
	startCaddy(t, siteConfigStorage(t, up, redisStorage(srv.URL), ""))
	clientID := up.Config().ClientID

	b := newBrowser(t)
	offline := &device{t: t, clientID: clientID, auth: map[string]any{"device_code": "never-issued", "user_code": "BCDF-GHJK"}}
	checks := unavailableChecks(t, clientID, offline, b, "no-csrf-yet")
	checks = append(checks, unavailableCheck{"entry page (needs the server secret)", false, func() *http.Response {
		resp, err := b.client.Get(testSite + "/device")
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}})
	expectUnavailable(t, checks)

	srv.Restart()
	untilAvailable(t, func() (int, map[string]any) {
		status, out, _ := postForm(t, "/device/code", url.Values{"client_id": {clientID}, "scope": {"openid"}})
		return status, out
	})
	tv := newDevice(t, clientID, "openid")
	if done := b.approve(tv.userCode()); done.status != http.StatusOK || !done.is("success") {
		t.Fatalf("approve once Redis is up: %d\n%s", done.status, done.body)
	}
	if status, tokens := tv.poll(); status != http.StatusOK || tokens["access_token"] == nil {
		t.Fatalf("tokens once Redis is up: %d %v", status, tokens)
	}
}
