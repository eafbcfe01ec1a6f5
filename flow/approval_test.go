package flow_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
	"github.com/caddy-device-flow/caddy-device-flow/storage/redisstore"
	"github.com/caddy-device-flow/caddy-device-flow/storage/redisstore/redistest"
)

// RFC 8628 puts no condition on when the person approves: the sign-in
// completes and the tokens wait for the device, whatever its polling
// schedule. The key they are sealed to is derived when the code is issued.
func TestApprovalWhateverTheDevicePolls(t *testing.T) {
	tests := []struct {
		name string
		// before is what the device does before the person signs in.
		before func(h *harness, deviceCode, clientID string)
		// wait is how long after the sign-in the device polls.
		wait time.Duration
	}{
		{name: "before the device's first poll"},
		{
			name: "after one poll and a long silence",
			before: func(h *harness, deviceCode, clientID string) {
				h.pollWants(deviceCode, clientID, "authorization_pending")
			},
			wait: 8 * time.Minute,
		},
		{
			name: "after slow_down grew the interval",
			before: func(h *harness, deviceCode, clientID string) {
				h.pollWants(deviceCode, clientID, "authorization_pending")
				h.clock.Advance(2 * time.Second)
				h.pollWants(deviceCode, clientID, "slow_down")
				h.clock.Advance(2 * time.Second)
				h.pollWants(deviceCode, clientID, "slow_down") // now 15 s
			},
			wait: 15 * time.Second,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{upstream: true})
			clientID := h.up.ClientID
			auth := h.newCode("192.0.2.1", clientID)
			deviceCode, userCode := auth["device_code"].(string), auth["user_code"].(string)
			if tc.before != nil {
				tc.before(h, deviceCode, clientID)
			}
			if page := h.approve(personBrowser(), userCode, nil); page.status != http.StatusOK || !page.isPage("success") {
				t.Fatalf("sign-in: %d, want the success page at once:\n%s", page.status, page.body)
			}
			h.clock.Advance(tc.wait)
			status, out := h.poll(deviceCode, clientID)
			if status != http.StatusOK || out["access_token"] == nil {
				t.Fatalf("device: %d %v, want its tokens", status, out)
			}
			h.pollWants(deviceCode, clientID, "invalid_grant") // delivered once
		})
	}
}

// pollWants polls once and fails unless the answer is the error named.
func (h *harness) pollWants(deviceCode, clientID, want string) {
	h.t.Helper()
	if status, out := h.poll(deviceCode, clientID); out["error"] != want {
		h.t.Fatalf("poll: %d %v, want %s", status, out, want)
	}
}

// An approved code polled many times at once (a device retrying in
// parallel, or a thief racing it): exactly one poll gets the tokens, every
// other hears invalid_grant. On Badger and on Redis: the poll decides and
// takes in one atomic update of the store (storetest's TakeOnce is that
// update on its own).
func TestConcurrentPollsDeliverOnce(t *testing.T) {
	const polls = 30
	for _, st := range []struct {
		name  string
		store func(t *testing.T) flow.Store // nil: the harness's Badger
	}{
		{"badger", nil},
		{"redis", func(t *testing.T) flow.Store {
			srv := redistest.Start(t)
			c, err := redisstore.Open(context.Background(), redisstore.Options{URL: srv.URL, KeyPrefix: "polls:"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			return c.Store("polls-test")
		}},
	} {
		t.Run(st.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{upstream: true, configure: func(c *flow.Config) {
				if st.store != nil {
					c.Store = st.store(t)
				}
				c.Store = lingeringStore{c.Store}
			}})
			clientID := h.up.ClientID
			auth := h.newCode("192.0.2.1", clientID)
			if page := h.approve(personBrowser(), auth["user_code"].(string), nil); !page.isPage("success") {
				t.Fatalf("sign-in: %d\n%s", page.status, page.body)
			}
			form := url.Values{
				"grant_type":  {"urn:ietf:params:oauth:grant-type:device_code"},
				"device_code": {auth["device_code"].(string)},
				"client_id":   {clientID},
			}.Encode()
			answers := make([]answer, polls)
			errs := make([]error, polls)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range polls {
				wg.Go(func() {
					<-start
					req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/device/token", strings.NewReader(form))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					resp, err := http.DefaultClient.Do(req)
					if errs[i] = err; err == nil {
						defer resp.Body.Close()
						body, _ := io.ReadAll(resp.Body)
						answers[i] = answer{status: resp.StatusCode, body: string(body), url: req.URL.String()}
					}
				})
			}
			close(start)
			wg.Wait()
			wins := 0
			for i, a := range answers {
				if errs[i] != nil {
					t.Fatalf("poll %d: %v", i, errs[i])
				}
				switch out := a.json(t); {
				case a.status == http.StatusOK && out["access_token"] != nil:
					wins++
				case a.status != http.StatusBadRequest || out["error"] != "invalid_grant":
					t.Errorf("poll %d: %d %s, want the tokens or invalid_grant", i, a.status, a.body)
				}
			}
			if wins != 1 {
				t.Fatalf("%d of %d concurrent polls got the tokens, want exactly 1", wins, polls)
			}
		})
	}
}

// lingeringStore is a real store whose UpdateDevice takes a little longer
// to come back, as over a slow network: a poll that took its decision in
// one update and acted on it in another would let the others in between.
type lingeringStore struct{ flow.Store }

func (s lingeringStore) UpdateDevice(ctx context.Context, userCode string, fn func(*flow.Device) (flow.Verdict, error)) error {
	err := s.Store.UpdateDevice(ctx, userCode, fn)
	time.Sleep(5 * time.Millisecond)
	return err
}
