package flow_test

import (
	"net/http"
	"testing"
	"time"
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
