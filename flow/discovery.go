package flow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// UpstreamMetadata is what we use of an upstream's OpenID Connect Discovery
// or RFC 8414 metadata.
type UpstreamMetadata struct {
	Issuer                string   `json:"issuer"`
	AuthorizationEndpoint string   `json:"authorization_endpoint"`
	TokenEndpoint         string   `json:"token_endpoint"`
	ScopesSupported       []string `json:"scopes_supported"`
	CodeChallengeMethods  []string `json:"code_challenge_methods_supported"`
}

// ErrIssuerUnreachable is the error of a discovery that got no usable
// answer: no connection, a timeout, or a 5xx or 429 status. The issuer may
// still be starting (or be served by the same Caddy, not yet listening), so
// this is an outage to wait out; metadata that answers but is wrong is a
// configuration error.
var ErrIssuerUnreachable = errors.New("issuer unreachable")

// ErrIssuerHostNotFound comes with ErrIssuerUnreachable when the DNS says
// the issuer's host name does not exist (NXDOMAIN): most likely a typo,
// though a name not yet published looks the same.
var ErrIssuerHostNotFound = errors.New("issuer host does not resolve (probably a typo)")

// unreachable marks one failed fetch as an outage (ErrIssuerUnreachable).
type unreachable struct{ error }

func (u unreachable) Unwrap() error { return u.error }

// hostNotFound reports whether err is the DNS saying the name does not exist.
func hostNotFound(err error) bool {
	var dnsErr *net.DNSError
	return errors.As(err, &dnsErr) && dnsErr.IsNotFound
}

// Discover reads the issuer's metadata: OpenID Connect Discovery first,
// then RFC 8414 (whose well-known path goes before the issuer's path). The
// document must name the same issuer (RFC 8414 §3.3), so a misconfigured
// or spoofed metadata document is refused rather than trusted.
func Discover(ctx context.Context, client *http.Client, issuer string) (*UpstreamMetadata, error) {
	if err := CheckEndpointURL(issuer); err != nil {
		return nil, fmt.Errorf("issuer: %w", err)
	}
	issuer = strings.TrimSuffix(issuer, "/")
	u, _ := url.Parse(issuer)
	candidates := []string{
		issuer + "/.well-known/openid-configuration",
		u.Scheme + "://" + u.Host + "/.well-known/oauth-authorization-server" + u.Path,
	}
	var errs []string
	down, notFound := false, true
	for _, where := range candidates {
		md, err := fetchMetadata(ctx, client, where)
		if err != nil {
			down = down || errors.As(err, new(unreachable))
			notFound = notFound && hostNotFound(err)
			errs = append(errs, fmt.Sprintf("%s: %v", where, err))
			continue
		}
		if strings.TrimSuffix(md.Issuer, "/") != issuer {
			return nil, fmt.Errorf("%s names issuer %q, not %q", where, limitText(md.Issuer, 200), issuer)
		}
		if err := CheckAuthorizationEndpoint(md.AuthorizationEndpoint); err != nil {
			return nil, fmt.Errorf("%s: authorization_endpoint: %w", where, err)
		}
		if err := CheckEndpointURL(md.TokenEndpoint); err != nil {
			return nil, fmt.Errorf("%s: token_endpoint: %w", where, err)
		}
		if len(md.CodeChallengeMethods) > 0 && !contains(md.CodeChallengeMethods, "S256") {
			return nil, fmt.Errorf("%s: the upstream does not support PKCE S256", where)
		}
		return md, nil
	}
	if notFound {
		return nil, fmt.Errorf("%w: %w: %s: %s", ErrIssuerUnreachable, ErrIssuerHostNotFound, u.Hostname(), strings.Join(errs, "; "))
	}
	if down {
		// Either place may hold the metadata once the issuer answers.
		return nil, fmt.Errorf("%w: %s", ErrIssuerUnreachable, strings.Join(errs, "; "))
	}
	return nil, fmt.Errorf("cannot read the issuer's metadata: %s", strings.Join(errs, "; "))
}

func fetchMetadata(ctx context.Context, client *http.Client, where string) (*UpstreamMetadata, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, where, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, unreachable{scrubURLError(err)}
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode >= 500, resp.StatusCode == http.StatusTooManyRequests:
		// Failing or busy (a proxy in front of an IdP still starting
		// answers 502), not wrong.
		return nil, unreachable{fmt.Errorf("HTTP status %d", resp.StatusCode)}
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("HTTP status %d", resp.StatusCode)
	}
	// Read whole first: a connection cut mid-body is an outage, a body
	// that is not metadata is not.
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxUpstreamBody))
	if err != nil {
		return nil, unreachable{err}
	}
	var md UpstreamMetadata
	if err := json.Unmarshal(body, &md); err != nil {
		return nil, fmt.Errorf("not a JSON metadata document: %v", err)
	}
	return &md, nil
}
