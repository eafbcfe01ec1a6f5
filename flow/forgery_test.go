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

// storeCounter counts the store calls that read or write device records,
// logins and counters.
type storeCounter struct {
	flow.Store
	calls atomic.Int64
}

func (c *storeCounter) CreateDevice(ctx context.Context, d *flow.Device) error {
	c.calls.Add(1)
	return c.Store.CreateDevice(ctx, d)
}

func (c *storeCounter) UpdateDevice(ctx context.Context, userCode string, fn func(*flow.Device) (flow.Verdict, error)) error {
	c.calls.Add(1)
	return c.Store.UpdateDevice(ctx, userCode, fn)
}

func (c *storeCounter) DeviceByUserCode(ctx context.Context, userCode string) (*flow.Device, error) {
	c.calls.Add(1)
	return c.Store.DeviceByUserCode(ctx, userCode)
}

func (c *storeCounter) PutLogin(ctx context.Context, key string, login *flow.Login) error {
	c.calls.Add(1)
	return c.Store.PutLogin(ctx, key, login)
}

func (c *storeCounter) TakeLogin(ctx context.Context, key, state string) (*flow.Login, error) {
	c.calls.Add(1)
	return c.Store.TakeLogin(ctx, key, state)
}

func (c *storeCounter) Tally(ctx context.Context, steps ...flow.Tally) ([]int64, error) {
	c.calls.Add(1)
	return c.Store.Tally(ctx, steps...)
}

// A device code that was altered, forged from a user code someone knows,
// or made up, is refused with invalid_grant before the store is read, and
// leaves nothing there: no record, no counter.
func TestForgedDeviceCodesNeverReachTheStore(t *testing.T) {
	counter := &storeCounter{}
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
	for range 200 { // made up
		b := make([]byte, 32)
		rand.Read(b)
		tries = append(tries, base64.RawURLEncoding.EncodeToString(b))
	}
	tries = append(tries, code[:len(code)-1], code+"A", strings.ToUpper(code), userCode)

	counter.calls.Store(0)
	for _, try := range tries {
		if status, out := h.poll(try, "tv"); status != 400 || out["error"] != flow.ErrInvalidGrant {
			t.Fatalf("poll with %q: %d %v, want invalid_grant", try, status, out)
		}
	}
	if n := counter.calls.Load(); n != 0 {
		t.Fatalf("%d store calls for %d forged, altered or made-up codes, want none", n, len(tries))
	}
	h.pollWants(code, "tv", flow.ErrAuthorizationPending)
	if n := counter.calls.Load(); n != 1 {
		t.Fatalf("the real code's poll called the store %d times, want once", n)
	}
}
