package flow_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// upstreamCalls counts the calls to the upstream token endpoint.
type upstreamCalls struct{ token atomic.Int64 }

func (*upstreamCalls) Event(string) {}
func (c *upstreamCalls) Upstream(op, _ string, _ time.Duration) {
	if op == "token" {
		c.token.Add(1)
	}
}

// storedSealKey is the seal key the store holds for the user code.
func (h *harness) storedSealKey(userCode string) []byte {
	h.t.Helper()
	d, err := h.store.DeviceByUserCode(context.Background(), strings.ReplaceAll(userCode, "-", ""))
	if err != nil {
		h.t.Fatalf("device %s: %v", userCode, err)
	}
	return d.SealKey
}

func TestSealKeyIsDerivedAtTheFirstPoll(t *testing.T) {
	h := newHarness(t, harnessOptions{upstream: true})
	clientID := h.up.ClientID
	auth := h.newCodeUnpolled("192.0.2.1", clientID)
	deviceCode, userCode := auth["device_code"].(string), auth["user_code"].(string)
	want, err := flow.SealPublicKey(deviceCode)
	if err != nil {
		t.Fatal(err)
	}

	steps := []struct {
		name     string
		clientID string
		wantKey  []byte
	}{
		{"issued: no key yet", "", nil},
		{"a poll naming another client derives nothing", "someone-else", nil},
		{"the first poll derives it", clientID, want},
		{"later polls keep it", clientID, want},
	}
	for _, st := range steps {
		if st.clientID != "" {
			h.clock.Advance(flow.DefaultInterval)
			h.poll(deviceCode, st.clientID)
		}
		if got := h.storedSealKey(userCode); !bytes.Equal(got, st.wantKey) {
			t.Fatalf("%s: stored key %x, want %x", st.name, got, st.wantKey)
		}
	}
}

func TestSignInWaitsForTheDevicesFirstPoll(t *testing.T) {
	tests := []struct {
		name string
		wait time.Duration
		// meanwhile happens once the callback is waiting.
		meanwhile func(h *harness, deviceCode, clientID string)
		status    int
		page      string
		says      string // what the page tells the person
		redeemed  bool   // the authorization code went to the upstream
	}{
		{
			name: "the device polls while the sign-in waits",
			wait: time.Minute,
			meanwhile: func(h *harness, deviceCode, clientID string) {
				if _, out := h.poll(deviceCode, clientID); out["error"] != "authorization_pending" {
					h.t.Errorf("first poll: %v", out)
				}
			},
			status: http.StatusOK, page: "success", redeemed: true,
		},
		{
			name:   "the device never polls",
			wait:   300 * time.Millisecond,
			status: http.StatusConflict, page: "error", says: "Your device has not picked up this code yet",
		},
		{
			name: "the code expires while the sign-in waits",
			wait: time.Minute,
			meanwhile: func(h *harness, _, _ string) {
				h.clock.Advance(flow.DefaultExpiresIn)
			},
			status: http.StatusBadRequest, page: "expired",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			calls := &upstreamCalls{}
			h := newHarness(t, harnessOptions{upstream: true, configure: func(c *flow.Config) {
				c.DeviceWait, c.Observer = tc.wait, calls
			}})
			clientID := h.up.ClientID
			auth := h.newCodeUnpolled("192.0.2.1", clientID)
			deviceCode, userCode := auth["device_code"].(string), auth["user_code"].(string)

			b := personBrowser()
			var callback string
			h.approve(b, userCode, func(u string) { callback = u })
			if callback == "" {
				t.Fatal("the IdP did not send the browser back")
			}
			done := make(chan answer, 1)
			go func() { done <- h.do(b, "", http.MethodGet, strings.TrimPrefix(callback, h.srv.URL), "", "") }()
			if tc.meanwhile != nil {
				h.awaitLog(t, "sign-in waits for the device's first poll")
				tc.meanwhile(h, deviceCode, clientID)
			}
			got := <-done
			if got.status != tc.status || !got.isPage(tc.page) {
				t.Fatalf("callback: %d, want %d %q:\n%s", got.status, tc.status, tc.page, got.body)
			}
			if !strings.Contains(got.body, tc.says) {
				t.Errorf("the page does not say %q:\n%s", tc.says, got.body)
			}
			if n := calls.token.Load(); (n > 0) != tc.redeemed {
				t.Errorf("%d calls to the upstream token endpoint, want redeemed=%v", n, tc.redeemed)
			}
			if !tc.redeemed && tc.page == "error" {
				// Nothing was lost: the device polls, the person starts
				// over, and the device gets its tokens.
				if _, out := h.poll(deviceCode, clientID); out["error"] != "authorization_pending" {
					t.Fatalf("poll after the silent sign-in: %v", out)
				}
				if page := h.approve(personBrowser(), userCode, nil); !page.isPage("success") {
					t.Fatalf("second sign-in: %d\n%s", page.status, page.body)
				}
			}
			if tc.redeemed || tc.page == "error" {
				h.clock.Advance(flow.DefaultInterval)
				if status, out := h.poll(deviceCode, clientID); status != http.StatusOK {
					t.Fatalf("device: %d %v, want its tokens", status, out)
				}
			}
		})
	}
}

// awaitLog waits (real time, bounded) until a log line with the message
// has been written: the sign-in is then waiting.
func (h *harness) awaitLog(t *testing.T, msg string) {
	t.Helper()
	for range 500 {
		if h.logs.FilterMessage(msg).Len() > 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no log line %q", msg)
}
