package flow_test

import (
	"strings"
	"testing"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

func TestNetworkOf(t *testing.T) {
	tests := []struct{ ip, want string }{
		{"192.0.2.77", "192.0.2.0/24"},
		{"::ffff:192.0.2.77", "192.0.2.0/24"},
		{"2001:db8:aa:bbcc::1", "2001:db8:aa:bb00::/56"},
		{"fe80::1%eth0", "fe80::/56"},
		{"", ""},
		{"not-an-ip", ""},
		{"192.0.2.1:443", ""},
	}
	for _, tc := range tests {
		got, ok := flow.NetworkOf(tc.ip, flow.DefaultNetworkBitsV4, flow.DefaultNetworkBitsV6)
		if s := got.String(); ok != (tc.want != "") || ok && s != tc.want {
			t.Errorf("networkOf(%q) = %s %v, want %q", tc.ip, s, ok, tc.want)
		}
	}
}

func TestParseNetwork(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{"192.0.2.0/24", "192.0.2.0/24", ""},
		{"10.1.2.3/8", "10.0.0.0/8", ""},
		{"2001:db8::/32", "2001:db8::/32", ""},
		{"192.0.2.9", "192.0.2.9/32", ""},
		{"2001:db8::9", "2001:db8::9/128", ""},
		{"::ffff:192.0.2.9", "192.0.2.9/32", ""},
		{"0.0.0.0/0", "0.0.0.0/0", ""},
		{"192.0.2.0/33", "", "not a network in CIDR form"},
		{"192.0.2/24", "", "not a network in CIDR form"},
		{"::ffff:192.0.2.0/120", "", "IPv4 form"},
		{"fe80::1%eth0", "", "zone"},
		{"example.com", "", "neither an IP address nor a network"},
		{"", "", "neither an IP address nor a network"},
	}
	for _, tc := range tests {
		got, err := flow.ParseNetwork(tc.in)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseNetwork(%q) = %v, %v; want an error with %q", tc.in, got, err, tc.err)
		case tc.err == "" && (err != nil || got.String() != tc.want):
			t.Errorf("ParseNetwork(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	if _, err := flow.ParseNetworks([]string{"192.0.2.0/24", "bad", "worse/1"}); err == nil || !strings.Contains(err.Error(), `"bad"`) || !strings.Contains(err.Error(), `"worse/1"`) {
		t.Errorf("ParseNetworks names each bad network: %v", err)
	}
}
