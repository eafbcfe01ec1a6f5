package templates

import "github.com/caddy-device-flow/caddy-device-flow/flow"

// ErrorKeys are the values flow.PageData.Error takes (see flow/pages.go).
var ErrorKeys = []string{
	"invalid_code", "csrf", "page_used", "state", "upstream", "upstream_error", "unavailable", "bad_request", "locked",
}

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
		for _, e := range append([]string{"no_such_error"}, ErrorKeys...) {
			out = append(out, with(minimal(), func(d *flow.PageData) { d.Error = e; d.UserCode = "BCDF-GHJX" }))
		}
	case flow.PageConfirm:
		out = append(out, with(full(), func(d *flow.PageData) {
			d.ClientName = d.ClientID // no separate name configured
			d.Scopes = nil
			d.QRPath = ""
		}))
	case flow.PageError:
		for _, e := range append([]string{"", "no_such_error"}, ErrorKeys...) {
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
