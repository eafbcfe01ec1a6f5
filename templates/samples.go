package templates

import "github.com/caddy-device-flow/caddy-device-flow/flow"

// Sample places: a city with names in several languages, and one known
// only by its country's code.
var (
	berlin = flow.Place{
		Country:      "DE",
		CountryNames: map[string]string{"en": "Germany", "de": "Deutschland", "fr": "Allemagne"},
		CityNames:    map[string]string{"en": "Berlin", "fr": "Berlin"},
	}
	paris = flow.Place{Country: "FR"}
)

// samples returns representative data for a page: New renders each page
// with each of these, in each language, so a template that fails on some
// shape of data (no scopes, no QR, an error set or not) fails at
// provisioning. Every field a page may use is set in at least one sample.
func samples(page string) []*flow.PageData {
	full := func() *flow.PageData {
		return &flow.PageData{
			UserCode:                "BCDF-GHJK",
			ClientID:                "living-room-tv",
			ClientName:              "Living Room TV",
			Scopes:                  []string{"openid", "profile", "email", "offline_access", "media:read"},
			CSRF:                    "c3JmLXRva2VuLXNhbXBsZQ",
			FormAction:              "/device",
			VerificationURIComplete: "https://auth.example.com/device?user_code=BCDF-GHJK",
			QRPath:                  "/device/qr?user_code=BCDF-GHJK",
			StartOver:               "/device",
			RetryAfter:              0,
			DeviceNetwork:           "198.51.100.x",
			DevicePlace:             &berlin,
			AskedAgo:                150,
		}
	}
	// minimal has only what every page can rely on.
	minimal := func() *flow.PageData {
		return &flow.PageData{CSRF: "c3JmLXRva2VuLXNhbXBsZQ", FormAction: "/device", StartOver: "/device"}
	}
	with := func(d *flow.PageData, f func(*flow.PageData)) *flow.PageData { f(d); return d }

	out := []*flow.PageData{full(), minimal(), {}}
	switch page {
	case flow.PageEnter:
		for _, e := range append([]string{"no_such_error"}, flow.ErrorKeys()...) {
			out = append(out, with(minimal(), func(d *flow.PageData) { d.Error = e; d.UserCode = "BCDF-GHJX" }))
		}
	case flow.PageConfirm, flow.PageTooFar:
		out = append(out, with(full(), func(d *flow.PageData) {
			d.ClientName = d.ClientID // no separate name configured
			d.Scopes = nil
			d.QRPath = ""
			d.DevicePlace = nil // no GeoIP database, or an address it does not know
		}))
		if page == flow.PageTooFar {
			out[0].StartOver = "/device?code=BCDF-GHJK"
		}
		for _, mode := range []string{"warn", "require"} {
			out = append(out, with(full(), func(d *flow.PageData) {
				d.Proximity = mode
				d.BrowserNetwork, d.BrowserPlace = "2001:db8:1234::/48", &paris
			}), with(full(), func(d *flow.PageData) {
				d.Proximity = mode
				d.DeviceNetwork, d.DevicePlace = "", nil // the device's address unknown
				d.BrowserNetwork = "203.0.113.x"
				d.AskedAgo = 7201
			}))
		}
	case flow.PageError:
		for _, e := range append([]string{"", "no_such_error"}, flow.ErrorKeys()...) {
			out = append(out, with(full(), func(d *flow.PageData) {
				d.Error = e
				d.ErrorDetail = "upstream answered 503 Service Unavailable"
				if e == "unavailable" {
					d.RetryAfter = 30
				}
			}))
		}
	case flow.PageTooMany:
		for _, s := range []int{1, 45, 60, 61, 900, 7200, 7201, 86400} {
			out = append(out, with(full(), func(d *flow.PageData) { d.RetryAfter = s }))
		}
	}
	return out
}
