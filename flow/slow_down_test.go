package flow_test

import (
	"testing"
	"time"
)

// Poll pacing (RFC 8628 §3.5): a device polling faster than its interval
// hears slow_down, and its interval grows by 5 seconds for good. A poll a
// little early (a fifth of the interval, at most a second) is jitter, not
// too fast; one immediate repeat is a client's retry, not a poll.
func TestSlowDown(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	deviceCode := h.newCode("192.0.2.1", "tv")["device_code"].(string)
	steps := []struct {
		wait time.Duration // since the poll before
		want string
	}{
		{0, "authorization_pending"},                       // the first poll is never early
		{4200 * time.Millisecond, "authorization_pending"}, // early within the slack (1 s): fine
		{2 * time.Second, "slow_down"},                     // really too fast: the interval becomes 10 s
		{6 * time.Second, "slow_down"},                     // 5 s is no longer enough: 15 s now
		{15 * time.Second, "authorization_pending"},        // honouring the new interval
		{14 * time.Second, "authorization_pending"},        // within the slack of 15 s
		// golang.org/x/oauth2 sends each failed poll twice in a row: the
		// repeat is forgiven once, a second one is polling too fast.
		{200 * time.Millisecond, "authorization_pending"},
		{200 * time.Millisecond, "slow_down"},
		{20 * time.Second, "authorization_pending"}, // the interval is 20 s now
	}
	for i, st := range steps {
		h.clock.Advance(st.wait)
		if status, out := h.poll(deviceCode, "tv"); status != 400 || out["error"] != st.want {
			t.Fatalf("step %d (after %s): %d %v, want %s", i, st.wait, status, out, st.want)
		}
	}
}
