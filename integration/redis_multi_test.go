package integration

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-device-flow/caddy-device-flow/storage/redisstore/redistest"
)

// Two Caddy processes on one Redis, as behind a load balancer without
// stickiness: the same site, so the same records (Handler.Name).

func TestTwoInstancesShareRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the caddy binary")
	}
	srv := redistest.Start(t)
	t.Setenv("DF_TEST_REDIS_URL", srv.URL)
	buildCaddy(t) // before the clock below starts
	start := time.Now()
	up := startUpstream(t)
	clientID := up.Config().ClientID
	siteA := fmt.Sprintf("http://127.0.0.1:%d", freePort())
	siteB := fmt.Sprintf("http://127.0.0.1:%d", freePort())
	// Redis is named by an environment placeholder, as an operator would
	// keep it out of the file; the same line on both instances.
	storage := redisStorageWithPrefix("{env.DF_TEST_REDIS_URL}", newKeyPrefix())
	startCaddyProcess(t, instanceConfig(siteA, up, storage), siteA+"/device")
	startCaddyProcess(t, instanceConfig(siteB, up, storage), siteB+"/device")

	t.Run("poll A, approve on B", func(t *testing.T) {
		status, auth := postFormTo(t, siteA, "/device/code", map[string]string{"client_id": clientID, "scope": "openid profile"})
		if status != http.StatusOK {
			t.Fatalf("device code from A: %d %v", status, auth)
		}
		deviceCode, userCode := auth["device_code"].(string), auth["user_code"].(string)

		// The form comes from A, is posted to B: B checks A's CSRF token,
		// which works only because both read the secret from Redis. (The
		// cookie jar ignores ports, as one name behind a balancer would.)
		b := newBrowser(t)
		entry := b.get(siteA + "/device")
		confirm := b.postPage(siteB, "/device", url.Values{"csrf": {entry.csrf(t)}, "user_code": {userCode}, "action": {"lookup"}})
		if !confirm.is("confirm") || !strings.HasPrefix(confirm.url, siteB) {
			t.Fatalf("B's confirmation page for A's code expected, got %d %s:\n%s", confirm.status, confirm.url, confirm.body)
		}
		done := b.postPage(siteB, "/device", url.Values{"csrf": {confirm.csrf(t)}, "user_code": {userCode}, "action": {"approve"}})
		if !done.is("success") || !strings.HasPrefix(done.url, siteB+"/auth/redirect") {
			t.Fatalf("the upstream must send the person back to B's callback and B must succeed: %d %s\n%s", done.status, done.url, done.body)
		}

		status, tokens := devicePoll(t, siteA, clientID, deviceCode)
		if status != http.StatusOK || tokens["access_token"] == nil || tokens["refresh_token"] == nil {
			t.Fatalf("A must deliver the tokens B obtained: %d %v", status, tokens)
		}
		for _, site := range []string{siteA, siteB} {
			if status, out := devicePoll(t, site, clientID, deviceCode); status != 400 || out["error"] != "invalid_grant" {
				t.Fatalf("after delivery, %s must know the code is used: %d %v", site, status, out)
			}
		}
	})

	t.Run("50 concurrent polls over both, one success", func(t *testing.T) {
		status, auth := postFormTo(t, siteB, "/device/code", map[string]string{"client_id": clientID, "scope": "openid"})
		if status != http.StatusOK {
			t.Fatalf("device code from B: %d %v", status, auth)
		}
		deviceCode := auth["device_code"].(string)
		b := newBrowser(t)
		confirm := b.get(siteA + "/device?code=" + url.QueryEscape(auth["user_code"].(string)))
		if !confirm.is("confirm") {
			t.Fatalf("A's confirmation page for B's code expected:\n%s", confirm.body)
		}
		if done := b.postPage(siteA, "/device", url.Values{"csrf": {confirm.csrf(t)}, "user_code": {auth["user_code"].(string)}, "action": {"approve"}}); !done.is("success") {
			t.Fatalf("approve on A: %d\n%s", done.status, done.body)
		}

		const polls = 50
		type answer struct {
			status int
			out    map[string]any
		}
		answers := make(chan answer, polls)
		var wg sync.WaitGroup
		gate := make(chan struct{})
		for i := range polls {
			site := siteA
			if i%2 == 1 {
				site = siteB
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-gate
				status, out := devicePoll(t, site, clientID, deviceCode)
				answers <- answer{status, out}
			}()
		}
		close(gate)
		wg.Wait()
		close(answers)
		wins := 0
		for a := range answers {
			switch {
			case a.status == http.StatusOK:
				wins++
			case a.status == 400 && (a.out["error"] == "invalid_grant" || a.out["error"] == "slow_down"):
			default:
				t.Errorf("unexpected answer to a concurrent poll: %d %v", a.status, a.out)
			}
		}
		if wins != 1 {
			t.Fatalf("%d of %d concurrent polls over two instances got the tokens; exactly one must", wins, polls)
		}
	})

	t.Run("guess limit counted across instances", func(t *testing.T) {
		b := newBrowser(t)
		for i, site := range []string{siteA, siteB} {
			if p := b.get(site + "/device?code=BCDF-BCDF"); p.status != http.StatusBadRequest || !p.is("enter") {
				t.Fatalf("wrong guess %d at %s: %d\n%s", i+1, site, p.status, p.body)
			}
		}
		if p := b.get(siteA + "/device?code=BCDF-BCDF"); p.status != http.StatusTooManyRequests || !p.is("toomany") {
			t.Fatalf("third wrong guess (limit 2, one at A and one at B before): %d\n%s", p.status, p.body)
		}
	})
	t.Logf("two instances, three checks: %v after the build", time.Since(start).Round(100*time.Millisecond))
}
