package flow

import (
	"fmt"
	"net/http"
	"net/netip"
)

// ProximityMode is what happens when the person approving a code is not
// near the device that asked for it (draft-ietf-oauth-cross-device-security,
// "Establish Proximity"): in device-code phishing the attacker's device is
// elsewhere, the victim at home.
type ProximityMode string

const (
	ProximityOff     ProximityMode = "off"     // no check
	ProximityWarn    ProximityMode = "warn"    // a warning on the confirmation page; Approve works (the default)
	ProximityRequire ProximityMode = "require" // Approve is refused
)

// CheckProximityMode accepts off, warn, require, and "" (the default).
func CheckProximityMode(m ProximityMode) error {
	switch m {
	case "", ProximityOff, ProximityWarn, ProximityRequire:
		return nil
	}
	return fmt.Errorf("proximity must be off, warn or require, not %q", string(m))
}

// ProximityPrefix is how many leading bits two addresses must share to be
// one network.
type ProximityPrefix struct {
	IPv4, IPv6 int
}

// DefaultProximityPrefix: an IPv4 /24 (one home or office behind one
// router, or its neighbours), an IPv6 /56 (what an ISP gives one customer).
var DefaultProximityPrefix = ProximityPrefix{IPv4: 24, IPv6: 56}

// Check accepts 1–32 bits for IPv4 and 1–128 for IPv6, and the zero
// value (the default).
func (p ProximityPrefix) Check() error {
	if p == (ProximityPrefix{}) {
		return nil
	}
	return p.CheckBits()
}

// CheckBits accepts 1–32 bits for IPv4 and 1–128 for IPv6, not the zero
// value: for a prefix a configuration gives, which zero would silently
// turn into the default.
func (p ProximityPrefix) CheckBits() error {
	if p.IPv4 < 1 || p.IPv4 > 32 || p.IPv6 < 1 || p.IPv6 > 128 {
		return fmt.Errorf("proximity_prefix wants IPv4 bits 1-32 and IPv6 bits 1-128, not %d and %d", p.IPv4, p.IPv6)
	}
	return nil
}

// proximity is where the device asked for its code and where the person
// is now.
type proximity struct {
	mode                      ProximityMode
	device, browser           netip.Addr // invalid when unknown
	devicePlace, browserPlace Place
	// near: the same network, and (with a Locator that knows both) the
	// same country.
	near bool
}

// far reports whether the check has something to say: it is on, and the
// person is not near the device.
func (p proximity) far() bool { return p.mode != ProximityOff && !p.near }

// proximityOf compares the address the code was issued to with the
// browser's. It runs on the person's pages only, never on a poll.
func (s *Service) proximityOf(r *http.Request, d *Device) proximity {
	mode, prefix := s.proximityRule(d.ClientID)
	p := proximity{mode: mode, device: parseAddr(d.IssuedTo), browser: parseAddr(s.clientIP(r))}
	if loc := s.cfg.Locator; loc != nil {
		if p.device.IsValid() {
			p.devicePlace = loc.Locate(p.device)
		}
		if p.browser.IsValid() && mode != ProximityOff {
			p.browserPlace = loc.Locate(p.browser)
		}
	}
	p.near = sameNetwork(p.device, p.browser, prefix) && !differentCountries(p.devicePlace, p.browserPlace)
	return p
}

// proximityRule is the client's mode and prefix, else the site's.
func (s *Service) proximityRule(clientID string) (ProximityMode, ProximityPrefix) {
	mode, prefix := s.cfg.Proximity, s.cfg.ProximityPrefix
	if c, ok := s.cfg.Clients[clientID]; ok {
		if c.Proximity != "" {
			mode = c.Proximity
		}
		if c.ProximityPrefix != (ProximityPrefix{}) {
			prefix = c.ProximityPrefix
		}
	}
	return mode, prefix
}

// sameNetwork reports whether a and b share their first prefix bits. An
// IPv4 and an IPv6 address never do: nothing relates them, and an
// attacker could otherwise pass by asking over the other version.
func sameNetwork(a, b netip.Addr, prefix ProximityPrefix) bool {
	if !a.IsValid() || !b.IsValid() || a.Is4() != b.Is4() {
		return false
	}
	bits := prefix.IPv6
	if a.Is4() {
		bits = prefix.IPv4
	}
	pa, errA := a.Prefix(bits)
	pb, errB := b.Prefix(bits)
	return errA == nil && errB == nil && pa == pb
}

// differentCountries: both places are known, and in different countries.
func differentCountries(a, b Place) bool {
	return a.Country != "" && b.Country != "" && a.Country != b.Country
}
