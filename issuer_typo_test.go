package deviceflow

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// TestValidateFailsOnAnIssuerThatDoesNotResolve: `caddy validate` fails
// when the DNS says the issuer's host does not exist (a typo), where an
// issuer that is merely down only warns. Names under .invalid never exist
// (RFC 6761); the test needs a resolver that says so.
func TestValidateFailsOnAnIssuerThatDoesNotResolve(t *testing.T) {
	const host = "idp.exmaple.invalid"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := net.DefaultResolver.LookupHost(ctx, host)
	if dnsErr := (*net.DNSError)(nil); !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
		t.Skipf("this machine's resolver does not answer NXDOMAIN for %s (%v); flow's TestIssuerHostDoesNotResolve covers it with its own DNS server", host, err)
	}
	raw := fmt.Sprintf(`{"apps":{"http":{"servers":{"s":{"listen":["127.0.0.1:0"],"routes":[{"handle":[{
		"handler":"device_flow","issuer":"https://%s/realms/main","upstream_timeout":"3s",
		"storage":{"backend":"badger","dir":%q}}]}]}}}}}`, host, t.TempDir())
	var cfg *caddy.Config
	if err := caddy.StrictUnmarshalJSON([]byte(raw), &cfg); err != nil {
		t.Fatal(err)
	}
	err = caddy.Validate(cfg)
	if err == nil || !strings.Contains(err.Error(), "issuer host does not resolve (probably a typo)") || !strings.Contains(err.Error(), host) {
		t.Fatalf("caddy.Validate: %v, want it to fail naming the host", err)
	}
}
