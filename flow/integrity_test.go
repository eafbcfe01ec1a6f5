package flow_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
	"github.com/caddy-device-flow/caddy-device-flow/flow/seal"
	"github.com/caddy-device-flow/caddy-device-flow/storage/redisstore"
	"github.com/caddy-device-flow/caddy-device-flow/storage/redisstore/redistest"
)

var testServerSecret = []byte("a server secret of at least 32 bytes, from the config")

// integrityStores are the stores the record-integrity tests run on: the
// harness's Badger, or a Redis of their own.
var integrityStores = []struct {
	name string
	open func(t *testing.T, h *harness) flow.Store // nil: the harness's own
}{
	{"badger", nil},
	{"redis", func(t *testing.T, _ *harness) flow.Store {
		srv := redistest.Start(t)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := redisstore.Open(ctx, redisstore.Options{URL: srv.URL, KeyPrefix: "integrity:"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c.Store("integrity-test")
	}},
}

// integrityHarness is a flow with an upstream and a server secret from the
// config, on the named store; raw is that store as an attacker who can
// write to it sees it (no MACs checked or made).
func integrityHarness(t *testing.T, open func(*testing.T, *harness) flow.Store) (h *harness, raw flow.Store) {
	var redis flow.Store
	if open != nil {
		redis = open(t, nil)
	}
	h = newHarness(t, harnessOptions{upstream: true, configure: func(c *flow.Config) {
		if redis != nil {
			c.Store = redis
		}
		c.ServerSecret = testServerSecret
	}})
	if redis != nil {
		return h, redis
	}
	return h, h.store
}

// tamper rewrites the record stored under userCode, as someone with write
// access to the store can.
func tamper(t *testing.T, raw flow.Store, userCode string, change func(*flow.Device)) {
	t.Helper()
	err := raw.UpdateDevice(context.Background(), userCode, func(d *flow.Device) (flow.Verdict, error) {
		if d == nil {
			t.Fatal("no record to tamper with")
		}
		change(d)
		return flow.Save, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestTamperedRecordsYieldNoTokens: with a server secret in the config,
// someone who can write to the store (Badger's folder, Redis) cannot swap
// a record's seal key to read the tokens sealed to it, nor plant tokens of
// their own for a device: a record not written by the flow is taken for
// absent, logged and counted. Without the server secret both attacks
// work, which is what this test fails on.
func TestTamperedRecordsYieldNoTokens(t *testing.T) {
	const attackerCode = "a device code the attacker made up"
	attackerKey, err := seal.PublicKey(attackerCode)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range integrityStores {
		t.Run(st.name, func(t *testing.T) {
			t.Run("untouched", func(t *testing.T) {
				h, _ := integrityHarness(t, st.open)
				auth := h.newCode("192.0.2.1", h.up.ClientID)
				if done := h.approve(personBrowser(), auth["user_code"].(string), nil); !done.isPage("success") {
					t.Fatalf("approve: %d\n%s", done.status, done.body)
				}
				h.clock.Advance(5 * time.Second)
				if status, out := h.poll(auth["device_code"].(string), h.up.ClientID); status != http.StatusOK || out["access_token"] == nil {
					t.Fatalf("poll: %d %v, want the tokens", status, out)
				}
			})

			t.Run("seal key swapped", func(t *testing.T) {
				h, raw := integrityHarness(t, st.open)
				auth := h.newCode("192.0.2.1", h.up.ClientID)
				userCode := flowUserCode(auth)
				var callback string
				b := personBrowser()
				h.approve(b, auth["user_code"].(string), func(cb string) { callback = cb })
				if callback == "" {
					t.Fatal("the upstream did not send the browser back")
				}
				tamper(t, raw, userCode, func(d *flow.Device) { d.SealKey = attackerKey })
				resp, err := b.Get(callback)
				done := read(t, resp, err)
				if done.isPage("success") {
					t.Errorf("the callback took a tampered record for genuine")
				}
				if d, err := raw.DeviceByUserCode(context.Background(), userCode); err == nil && len(d.Sealed) > 0 {
					if tokens, err := seal.Open(attackerCode, d.Sealed); err == nil {
						t.Fatalf("the attacker opened the tokens: %d bytes", len(tokens))
					}
				}
				h.clock.Advance(5 * time.Second)
				if status, out := h.poll(auth["device_code"].(string), h.up.ClientID); status == http.StatusOK {
					t.Errorf("the device got %v from a tampered record", out)
				}
				assertForgedReported(t, h)
			})

			t.Run("tokens planted", func(t *testing.T) {
				h, raw := integrityHarness(t, st.open)
				auth := h.newCode("192.0.2.1", h.up.ClientID)
				tamper(t, raw, flowUserCode(auth), func(d *flow.Device) {
					sealed, err := seal.Seal(d.SealKey, []byte(`{"access_token":"the attacker's","token_type":"Bearer"}`))
					if err != nil {
						t.Fatal(err)
					}
					d.Status, d.Sealed = flow.Approved, sealed
				})
				h.clock.Advance(5 * time.Second)
				if status, out := h.poll(auth["device_code"].(string), h.up.ClientID); status == http.StatusOK || out["access_token"] != nil {
					t.Fatalf("the device took planted tokens: %d %v", status, out)
				}
				assertForgedReported(t, h)
			})

			t.Run("networks planted to lock a code", func(t *testing.T) {
				h, raw := integrityHarness(t, st.open)
				auth := h.newCode("192.0.2.1", h.up.ClientID)
				tamper(t, raw, flowUserCode(auth), func(d *flow.Device) {
					d.Networks = []string{"198.51.100.0/24", "203.0.113.0/24", "192.0.2.0/24"}
				})
				if page := h.lookup("192.0.2.3", auth["user_code"].(string)); page.isPage("confirm") || page.isPage("locked") {
					t.Fatalf("a record with planted networks was taken for genuine: %d", page.status)
				}
				assertForgedReported(t, h)
			})

			t.Run("record moved to another user code", func(t *testing.T) {
				h, raw := integrityHarness(t, st.open)
				victim := h.newCode("192.0.2.1", h.up.ClientID)
				other := h.newCode("192.0.2.2", h.up.ClientID)
				v, err := raw.DeviceByUserCode(context.Background(), flowUserCode(victim))
				if err != nil {
					t.Fatal(err)
				}
				tamper(t, raw, flowUserCode(other), func(d *flow.Device) {
					uc := d.UserCode
					*d = *v
					d.UserCode = uc
				})
				if page := h.lookup("192.0.2.3", other["user_code"].(string)); page.isPage("confirm") {
					t.Fatal("a record copied to another user code was offered for approval")
				}
				assertForgedReported(t, h)
			})
		})
	}
}

// flowUserCode is the normalized user code of a §3.2 answer.
func flowUserCode(auth map[string]any) string {
	return strings.ReplaceAll(auth["user_code"].(string), "-", "")
}

func assertForgedReported(t *testing.T, h *harness) {
	t.Helper()
	lines := h.logs.FilterMessageSnippet("record that is not genuine").All()
	if len(lines) == 0 || lines[0].Level.String() != "error" {
		t.Errorf("no error line about a record that is not genuine: %v", h.logs.All())
	}
}

// TestMovedLoginYieldsNoTokens: someone who can write to Redis cannot
// point a person's sign-in in progress at a device of their own (the
// login's user code and code hash), so that the person's tokens reach the
// attacker's device. Without the server secret they can.
func TestMovedLoginYieldsNoTokens(t *testing.T) {
	srv := redistest.Start(t)
	var raw flow.Store
	h, _ := integrityHarness(t, func(t *testing.T, _ *harness) flow.Store {
		c, err := redisstore.Open(context.Background(), redisstore.Options{URL: srv.URL, KeyPrefix: "moved:"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		raw = c.Store("integrity-test")
		return raw
	})
	attacker := h.newCode("192.0.2.66", h.up.ClientID)
	mine, err := raw.DeviceByUserCode(context.Background(), flowUserCode(attacker))
	if err != nil {
		t.Fatal(err)
	}
	victim := h.newCode("192.0.2.1", h.up.ClientID)
	var callback string
	b := personBrowser()
	h.approve(b, victim["user_code"].(string), func(cb string) { callback = cb })

	keys, err := redistest.Do(srv.Addr, "KEYS", "moved:*login:*")
	if err != nil || strings.Count(keys, "\n") != 0 || keys == "" {
		t.Fatalf("want the one login in Redis, got %q %v", keys, err)
	}
	stored, err := redistest.Do(srv.Addr, "GET", keys)
	if err != nil {
		t.Fatal(err)
	}
	var login map[string]any
	if err := json.Unmarshal([]byte(stored), &login); err != nil {
		t.Fatal(err)
	}
	login["uc"], login["ch"] = mine.UserCode, mine.CodeHash
	moved, _ := json.Marshal(login)
	if _, err := redistest.Do(srv.Addr, "SET", keys, string(moved), "KEEPTTL"); err != nil {
		t.Fatal(err)
	}

	resp, err := b.Get(callback)
	if done := read(t, resp, err); done.isPage("success") {
		t.Errorf("the callback took a moved login for genuine")
	}
	h.clock.Advance(5 * time.Second)
	if status, out := h.poll(attacker["device_code"].(string), h.up.ClientID); status == http.StatusOK {
		t.Fatalf("the attacker's device got the person's tokens: %v", out)
	}
	assertForgedReported(t, h)
}
