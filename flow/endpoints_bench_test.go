package flow_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
	"github.com/caddy-device-flow/caddy-device-flow/internal/testclock"
	"github.com/caddy-device-flow/caddy-device-flow/storage/badgerstore"
	"github.com/caddy-device-flow/caddy-device-flow/templates"
)

// Benchmarks of the device's two endpoints through flow.Service, without a
// network: what the module adds to every request Caddy serves. The
// HTTP-level comparison with Caddy's own floor is bench/run.sh's.

func benchService(b *testing.B, limitsOff bool, configure ...func(*flow.Config)) (*flow.Service, *testclock.Clock) {
	b.Helper()
	db, err := badgerstore.Open(badgerstore.Options{Dir: b.TempDir(), GCInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	pages, err := templates.New("")
	if err != nil {
		b.Fatal(err)
	}
	clock := testclock.New()
	cfg := flow.Config{
		AuthorizationEndpoint: "https://idp.example/authorize",
		TokenEndpoint:         "https://idp.example/token",
		Store:                 db.Store("bench"),
		Pages:                 pages,
		Now:                   clock.Now,
		// Long enough that the fake clock, moved one interval per round of
		// polls, never reaches it.
		ExpiresIn: 1000 * time.Hour,
		Limits:    flow.Limits{Off: limitsOff, IssuePerIP: 1 << 30, LiveCodes: 1 << 30},
	}
	for _, c := range configure {
		c(&cfg)
	}
	svc, err := flow.New(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	return svc, clock
}

func post(svc http.Handler, path, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := httptest.NewRecorder()
	svc.ServeHTTP(w, r)
	return w
}

func benchIssue(b *testing.B, limitsOff bool) {
	svc, _ := benchService(b, limitsOff)
	b.ReportAllocs()
	for b.Loop() {
		if w := post(svc, "/device/code", "client_id=tv&scope=openid"); w.Code != http.StatusOK {
			b.Fatalf("issue: %d %s", w.Code, w.Body)
		}
	}
}

func BenchmarkIssueCode(b *testing.B) {
	b.Run("limits=off", func(b *testing.B) { benchIssue(b, true) })
	b.Run("limits=on", func(b *testing.B) { benchIssue(b, false) })
}

// BenchmarkPollPending polls a pool of pending codes round-robin, moving
// the clock one interval per round so that no poll is early: every answer
// is authorization_pending. With a server secret in the config, each poll
// also checks its record's MAC.
func BenchmarkPollPending(b *testing.B) {
	benchPollPending(b)
}

func BenchmarkPollPendingServerSecret(b *testing.B) {
	benchPollPending(b, func(c *flow.Config) { c.ServerSecret = testServerSecret })
}

func benchPollPending(b *testing.B, configure ...func(*flow.Config)) {
	svc, clock := benchService(b, true, configure...)
	const pool = 1000
	bodies := make([]string, pool)
	for i := range bodies {
		w := post(svc, "/device/code", "client_id=tv")
		var da struct {
			DeviceCode string `json:"device_code"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &da); err != nil || da.DeviceCode == "" {
			b.Fatalf("issue: %d %s", w.Code, w.Body)
		}
		bodies[i] = url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"},
			"client_id": {"tv"}, "device_code": {da.DeviceCode}}.Encode()
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i%pool == 0 {
			clock.Advance(flow.DefaultInterval)
		}
		w := post(svc, "/device/token", bodies[i%pool])
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), flow.ErrAuthorizationPending) {
			b.Fatalf("poll %d: %d %s", i, w.Code, w.Body)
		}
		i++
	}
}
