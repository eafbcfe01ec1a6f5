package flow

import (
	"context"
	"time"
)

// The X25519 key that a device's tokens are sealed to (seal.go) is derived
// from the device code at the device's first poll, not when the code is
// issued. Deriving it is a fixed-base scalar multiplication, ~35 µs of CPU
// here: as much as the rest of issuing a code together, and issuing is
// unauthenticated, so a flood of requests for codes no device will ever
// poll would buy that work for nothing. A poll proves possession of the
// device code (which the store never holds), so the key costs only codes
// that a device is actually waiting on, once each.
//
// The key is only needed when the person's sign-in comes back from the
// upstream with tokens to seal. An RFC 8628 device polls from the moment
// it shows the code (§3.4), at most one interval apart, so that first poll
// almost always came long before: typing a code and signing in take longer
// than an interval. When it has not (a QR code scanned at once, a
// remembered upstream session), the callback waits for it, up to
// DeviceWait (the interval plus a margin), before it redeems the
// authorization code: nothing is redeemed for a device that is gone.

// sealKeyPollEvery is how often the waiting callback looks at the record.
const sealKeyPollEvery = 50 * time.Millisecond

// awaitSealKey waits until the device has polled once (its record has a
// SealKey), for at most DeviceWait of real time: it waits for another
// party, not for an expiry, so it does not follow the injectable clock.
// gone: the record stopped being a live pending one meanwhile (expired,
// denied); neither: the wait ran out.
func (s *Service) awaitSealKey(ctx context.Context, deviceID string) (ready, gone bool, err error) {
	deadline := time.Now().Add(s.cfg.DeviceWait)
	for {
		err := s.cfg.Store.UpdateDevice(ctx, deviceID, func(d *Device) (Verdict, error) {
			gone = d == nil || d.Status != Pending || !s.cfg.Now().Before(d.ExpiresAt)
			ready = !gone && d.SealKey != nil
			return Keep, nil
		})
		if err != nil || ready || gone {
			return ready, gone, err
		}
		if !time.Now().Before(deadline) {
			return false, false, nil
		}
		select {
		case <-ctx.Done():
			return false, false, ctx.Err()
		case <-time.After(sealKeyPollEvery):
		}
	}
}
