package flow_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// readCounter counts the store reads of device records.
type readCounter struct {
	flow.Store
	reads atomic.Int64
}

func (c *readCounter) UpdateDevice(ctx context.Context, userCode string, fn func(*flow.Device) (flow.Verdict, error)) error {
	c.reads.Add(1)
	return c.Store.UpdateDevice(ctx, userCode, fn)
}

func (c *readCounter) DeviceByUserCode(ctx context.Context, userCode string) (*flow.Device, error) {
	c.reads.Add(1)
	return c.Store.DeviceByUserCode(ctx, userCode)
}

// A device code that was altered, or forged from a user code someone
// knows, is refused with invalid_grant before any store read.
func TestForgedDeviceCodesNeverReachTheStore(t *testing.T) {
	counter := &readCounter{}
	h := newHarness(t, harnessOptions{configure: func(c *flow.Config) {
		counter.Store = c.Store
		c.Store = counter
	}})
	auth := h.newCode("192.0.2.1", "tv")
	code := auth["device_code"].(string)
	userCode := strings.ReplaceAll(auth["user_code"].(string), "-", "")
	raw, err := base64.RawURLEncoding.DecodeString(code)
	if err != nil || !strings.HasPrefix(string(raw), userCode) {
		t.Fatalf("device code %q does not carry its user code %q", code, userCode)
	}

	var tries []string
	for i := range len(raw) * 8 { // every bit flipped
		b := []byte(string(raw))
		b[i/8] ^= 1 << (i % 8)
		tries = append(tries, base64.RawURLEncoding.EncodeToString(b))
	}
	for range 200 { // forged from the known user code
		b := []byte(userCode + strings.Repeat("x", len(raw)-len(userCode)))
		rand.Read(b[len(userCode):])
		tries = append(tries, base64.RawURLEncoding.EncodeToString(b))
	}
	tries = append(tries, code[:len(code)-1], code+"A", strings.ToUpper(code), userCode)

	counter.reads.Store(0)
	for _, try := range tries {
		if status, out := h.poll(try, "tv"); status != 400 || out["error"] != flow.ErrInvalidGrant {
			t.Fatalf("poll with %q: %d %v, want invalid_grant", try, status, out)
		}
	}
	if n := counter.reads.Load(); n != 0 {
		t.Fatalf("%d store reads for %d forged or altered codes, want none", n, len(tries))
	}
	h.pollWants(code, "tv", flow.ErrAuthorizationPending)
	if n := counter.reads.Load(); n != 1 {
		t.Fatalf("the real code's poll read the store %d times, want once", n)
	}
}
