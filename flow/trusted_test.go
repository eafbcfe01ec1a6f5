package flow_test

import (
	"net/http"
	"net/netip"
	"net/url"
	"testing"

	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// issue_from: device codes only for devices on the trusted networks; any
// other device gets unauthorized_client, counted and audited. A client's
// own list replaces the site's.
func TestIssueFrom(t *testing.T) {
	nets := func(s ...string) []netip.Prefix {
		p, err := flow.ParseNetworks(s)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name   string
		site   []netip.Prefix
		client []netip.Prefix // of client "kiosk"
		id, ip string
		issued bool
	}{
		{"no list: anywhere", nil, nil, "tv", "198.51.100.7", true},
		{"on the site's network", nets("192.0.2.0/24"), nil, "tv", "192.0.2.200", true},
		{"off the site's network", nets("192.0.2.0/24"), nil, "tv", "192.0.3.1", false},
		{"IPv6 on the network", nets("192.0.2.0/24", "2001:db8:1::/48"), nil, "tv", "2001:db8:1:2::5", true},
		{"IPv6 off the network", nets("192.0.2.0/24", "2001:db8:1::/48"), nil, "tv", "2001:db8:2::5", false},
		{"IPv4-mapped IPv6 counts as IPv4", nets("192.0.2.0/24"), nil, "tv", "::ffff:192.0.2.9", true},
		{"a single address", nets("192.0.2.9"), nil, "tv", "192.0.2.9", true},
		{"next to a single address", nets("192.0.2.9"), nil, "tv", "192.0.2.10", false},
		{"no address at all", nets("192.0.2.0/24"), nil, "tv", "not-an-ip", false},
		{"the client's list replaces the site's: in", nets("192.0.2.0/24"), nets("10.1.0.0/16"), "kiosk", "10.1.2.3", true},
		{"the client's list replaces the site's: out", nets("192.0.2.0/24"), nets("10.1.0.0/16"), "kiosk", "192.0.2.1", false},
		{"another client keeps the site's", nets("192.0.2.0/24"), nets("10.1.0.0/16"), "tv", "10.1.2.3", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var (
				obs   *countingObserver
				audit *observer.ObservedLogs
			)
			h := newHarness(t, harnessOptions{configure: func(c *flow.Config) {
				obs, audit = observed(c)
				c.IssueFrom = tc.site
				c.Clients = map[string]flow.Client{"tv": {}, "kiosk": {IssueFrom: tc.client}}
			}})
			a := h.post(tc.ip, "/device/code", url.Values{"client_id": {tc.id}})
			if tc.issued {
				if a.status != http.StatusOK {
					t.Fatalf("%d %s, want a code", a.status, a.body)
				}
				return
			}
			out := a.json(t)
			if a.status != http.StatusForbidden || out["error"] != "unauthorized_client" || out["error_description"] == "" || out["device_code"] != nil {
				t.Fatalf("%d %v, want 403 unauthorized_client", a.status, out)
			}
			if n := obs.count(flow.EventIssueRefused); n != 1 {
				t.Errorf("%d issue_refused events counted, want 1", n)
			}
			refused := auditEvents(audit, flow.AuditIssueRefused)
			if len(refused) != 1 {
				t.Fatalf("%d issue_refused audit events, want 1", len(refused))
			}
			if f := refused[0].ContextMap(); f["client_id"] != tc.id || f["device_ip"] != tc.ip {
				t.Errorf("issue_refused fields %v", f)
			}
		})
	}
}
