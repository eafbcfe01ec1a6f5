package flow_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
	"github.com/caddy-device-flow/caddy-device-flow/storage/redisstore"
	"github.com/caddy-device-flow/caddy-device-flow/storage/redisstore/redistest"
)

// When the server secret in Redis changes (Redis lost it and another
// instance made a new one), the flow follows within a minute, so that
// instances never stay apart: its pages' CSRF tokens are then the new
// secret's, and it says so in the log, once.
func TestServerSecretFollowsTheStore(t *testing.T) {
	srv := redistest.Start(t)
	const prefix = "secret-refresh:"
	c, err := redisstore.Open(context.Background(), redisstore.Options{URL: srv.URL, KeyPrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	h := newHarness(t, harnessOptions{configure: func(cfg *flow.Config) { cfg.Store = c.Store("secret-test") }})
	b := personBrowser()
	h.do(b, "", http.MethodGet, "/device", "", "") // the secret is read first

	key, err := redistest.Do(srv.Addr, "KEYS", prefix+"*secret:*")
	if err != nil || key == "" || strings.Contains(key, "\n") {
		t.Fatalf("the one secret under %s: %q %v", prefix, key, err)
	}
	first, err := redistest.Do(srv.Addr, "GET", key)
	if err != nil {
		t.Fatal(err)
	}
	// What another instance does after Redis lost the key: SET NX a fresh one.
	const second = "another instance's secret, 32 bytes"
	if _, err := redistest.Do(srv.Addr, "SET", key, second); err != nil {
		t.Fatal(err)
	}

	steps := []struct {
		after  time.Duration // since the last step
		secret string        // the one the page's CSRF token is made with
	}{
		{0, first},
		{time.Minute - time.Nanosecond, first},
		{time.Nanosecond, second}, // a minute since the secret was read
		{time.Hour, second},
	}
	site, _ := url.Parse(h.srv.URL)
	for i, st := range steps {
		h.clock.Advance(st.after)
		page := h.do(b, "", http.MethodGet, "/device", "", "")
		// A session from before the change fails the new secret's MAC
		// and is replaced: the token is for the browser's session now.
		var session string
		for _, ck := range b.Jar.Cookies(site) {
			if ck.Name == "device_flow_session" {
				session = ck.Value
			}
		}
		mac := hmac.New(sha256.New, []byte(st.secret))
		mac.Write([]byte("csrf\x00" + session))
		if got, want := formToken(t, page.body), base64.RawURLEncoding.EncodeToString(mac.Sum(nil)); got != want {
			t.Fatalf("step %d (%s on): the page's CSRF token is not from the secret it should be (the first is %t)", i, st.after, st.secret == first)
		}
	}
	if n := h.logs.FilterMessageSnippet("the server secret in the store changed").Len(); n != 1 {
		t.Errorf("%d warnings of the changed secret, want 1", n)
	}
}
