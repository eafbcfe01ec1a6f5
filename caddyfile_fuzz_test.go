package deviceflow

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// FuzzUnmarshalCaddyfile: whatever an operator writes in a device_flow
// block, the parser returns a configuration or an error, never panics,
// and what it accepts is a configuration that survives a JSON round trip
// (what Caddy does with it next). Run with
//
//	go test -run '^$' -fuzz '^FuzzUnmarshalCaddyfile$' -fuzztime 60s .
func FuzzUnmarshalCaddyfile(f *testing.F) {
	const up = "authorization_endpoint https://idp.example/authorize\ntoken_endpoint https://idp.example/token\n"
	for _, seed := range []string{
		"device_flow",
		"device_flow {\n}",
		"device_flow {\n" + up + "}",
		"device_flow {\nissuer https://idp.example\n}",
		"device_flow {\nissuer {env.IDP}\n}",
		"device_flow extra {\n" + up + "}",
		"device_flow {\n" + up + "storage badger\n}",
		"device_flow {\n" + up + "storage badger /tmp/x /tmp/y\n}",
		"device_flow {\n" + up + "storage floppy a b\n}",
		"device_flow {\n" + up + "storage badger {\n dir x\n}\n}",
		"device_flow {\n" + up + "storage\n}",
		"device_flow {\n" + up + "client tv {\nname \"TV\"\nsecret s\nscopes openid email\n}\n}",
		"device_flow {\n" + up + "client tv {\nclient tv2 {\n}\n}\n}",
		"device_flow {\n" + up + "client {\n}\n}",
		"device_flow {\n" + up + "client tv\nclient tv\n}",
		"device_flow {\n" + up + "guess_limit 10 per 15m\nguess_limit_total 100\nissue_limit 5 per 1m\nmax_live_codes 9\nlimits off\n}",
		"device_flow {\n" + up + "guess_limit 10 per\n}",
		"device_flow {\n" + up + "guess_limit -1 per 1m\n}",
		"device_flow {\n" + up + "guess_limit 99999999999999999999 per 1m\n}",
		"device_flow {\n" + up + "issue_limit 1 per 1d\n}",
		"device_flow {\n" + up + "issue_from 192.0.2.0/24 ::1 private_ranges\ncode_networks off\nclient tv {\nissue_from 10.0.0.0/8\n}\n}",
		"device_flow {\n" + up + "issue_from 192.0.2.0/99\ncode_networks 99999999999999999999\n}",
		"device_flow {\n" + up + "expires_in 10m\ninterval 5s\nupstream_timeout 1s\nuser_code digits\ntoken_auth post\n}",
		"device_flow {\n" + up + "prefix /oauth\nbase_url https://auth.example\ntemplates /etc/pages\n}",
		"device_flow {\n" + up + "name tv-site\n}",
		"device_flow {\n" + up + "name\n}",
		"device_flow {\n" + up + "prefix /\n}",
		"device_flow {\n" + up + "prefix\n}",
		"device_flow {\n" + up + "interval {\n}\n}",
		"device_flow {\n" + up + "expires_in 1ns\n}",
		"device_flow {\n" + up + "}\n}",
		"device_flow {\n{\n}",
		"device_flow {\n" + up + "limits off {\n}\n}",
		"device_flow {\n" + up + "geoip /var/lib/GeoIP/City.mmdb\nproximity require\nproximity_prefix 24 56\nclient tv {\nproximity off\nproximity_prefix 32 128\n}\n}",
		"device_flow {\n" + up + "proximity_prefix 24 56 {\n}\nproximity maybe\n}",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, input string) {
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
		if err != nil {
			if strings.TrimSpace(err.Error()) == "" {
				t.Fatalf("%q: an empty error", input)
			}
			return
		}
		b, err := json.Marshal(&h)
		if err != nil {
			t.Fatalf("%q: the accepted configuration does not marshal: %v", input, err)
		}
		var back Handler
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%q: %s does not unmarshal: %v", input, b, err)
		}
		if h.Issuer == "" && (h.AuthorizationEndpoint == "" || h.TokenEndpoint == "") {
			t.Fatalf("%q: accepted without an upstream: %s", input, b)
		}
	})
}

// Blocks the parser once skipped without a word: a `dir` inside `storage
// badger { }` was ignored and the default folder used.
func TestCaddyfileRefusesIgnoredBlocks(t *testing.T) {
	const up = "authorization_endpoint https://idp.example/authorize\ntoken_endpoint https://idp.example/token\n"
	for _, tc := range []struct{ block, want string }{
		{"storage badger {\ndir /var/lib/x\n}", "unrecognized subdirective dir of storage badger"},
		{"storage badger /var/lib/x {\ndir /var/lib/y\n}", "unrecognized subdirective dir of storage badger"},
		{"guess_limit_total 3 {\nfoo\n}", "guess_limit_total takes no block"},
		{"expires_in 5m {\nfoo\n}", "expires_in takes no block"},
	} {
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("device_flow {\n" + up + tc.block + "\n}"))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "Testfile:") {
			t.Errorf("%q: error %v, want %q with file and line", tc.block, err, tc.want)
		}
	}
}
