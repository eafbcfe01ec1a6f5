package flow

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"

	"go.uber.org/zap"

	"github.com/caddy-device-flow/caddy-device-flow/flow/codes"
)

// Config is everything the protocol core needs; module.go builds it from
// the Caddy configuration.
type Config struct {
	// Upstream endpoints (RFC 6749 §3.1, §3.2): both, or Issuer instead.
	AuthorizationEndpoint string
	TokenEndpoint         string
	// Issuer is the upstream's issuer URL, whose metadata (Discover) gives
	// the endpoints and the scopes_supported we mirror. New reads it once;
	// if the issuer is unreachable, the endpoints answer 503 while it is
	// read again in the background, until Close.
	Issuer string
	// TokenAuth is how the client secret reaches the upstream token
	// endpoint: "basic" (HTTP Basic, RFC 6749 §2.3.1) or "post" (form).
	TokenAuth string
	// UpstreamTimeout bounds every call to the upstream.
	UpstreamTimeout time.Duration
	HTTPClient      *http.Client

	// AuthorizeParams are added to every authorization request: what a
	// real IdP needs beyond scope (access_type, audience, resource,
	// prompt...). A client's own AuthorizeParams replace these name by
	// name. The names the flow sets itself are refused
	// (CheckAuthorizeParam).
	AuthorizeParams url.Values

	// Clients is the allow-list; empty means every client_id passes.
	Clients map[string]Client

	ExpiresIn time.Duration // lifetime of a device code (default 10 m)
	Interval  time.Duration // polling interval (default 5 s)
	UserCode  codes.UserCodeFormat

	// Prefix is put before every path (e.g. "/oauth"); "" by default.
	Prefix string
	// BaseURL is our public origin ("https://auth.example.com"); when
	// empty it is taken from each request.
	BaseURL string
	// HSTS is the Strict-Transport-Security value (RFC 6797) of every
	// answer over HTTPS that has none yet; "" sends none.
	HSTS string

	Limits Limits

	// IssueFrom, when not empty, are the only networks device codes are
	// issued to ("Trusted Networks" of the cross-device BCP); a client's
	// own IssueFrom replaces it. Others get unauthorized_client.
	IssueFrom []netip.Prefix
	// CodeNetworks locks a user code opened from more networks than this
	// (networkOf: IPv4 /24, IPv6 /56): one code sent to many people is the
	// signature of device-code phishing. 0 means DefaultCodeNetworks; a
	// negative value turns the lock off.
	CodeNetworks int

	// Proximity is what happens when the person approving is not on the
	// device's network (proximity.go); "" is ProximityWarn. A client's own
	// Proximity and ProximityPrefix replace these.
	Proximity       ProximityMode
	ProximityPrefix ProximityPrefix // zero: DefaultProximityPrefix
	// Locator finds where addresses are (a GeoIP database), for the
	// confirmation page and the proximity check; none when nil.
	Locator Locator

	Store Store
	// ServerSecret, when set (at least MinServerSecret bytes), is the
	// server secret instead of the one the store keeps: the keys of
	// cookies, CSRF tokens, states and device codes are derived from it,
	// and every record the store holds is authenticated under another key
	// derived from it (integrity.go). The store never sees it. Handlers
	// that must not share records must not share it either: module.go
	// binds it to the handler's namespace.
	ServerSecret []byte
	Pages        Renderer
	Logger       *zap.Logger
	Observer     Observer
	// Audit gets the audit events (audit.go); none when nil.
	Audit *zap.Logger
	// Place names where an address is (a city, a country), for the audit
	// events' device_place and person_place; none when nil.
	Place func(ip string) string
	// ClientIP gives the client's address as Caddy sees it (honouring
	// trusted_proxies); RemoteAddr's host when nil.
	ClientIP func(*http.Request) string
	// Now is the clock; time.Now when nil. Tests move it forward instead
	// of sleeping.
	Now func() time.Time
}

// Client is one allowed device client.
type Client struct {
	Name   string   // display name on the confirmation page
	Secret string   // the upstream client secret; never leaves the server
	Scopes []string // allowed scopes; empty means any
	// AuthorizeParams replace Config.AuthorizeParams of the same name on
	// this client's authorization requests.
	AuthorizeParams url.Values
	// IssueFrom replaces Config.IssueFrom for this client.
	IssueFrom []netip.Prefix
	// Proximity and ProximityPrefix replace the Config's for this
	// client when set.
	Proximity       ProximityMode
	ProximityPrefix ProximityPrefix
}

// reservedAuthorizeParams are the authorization request parameters the
// flow sets itself: a static value would break PKCE, the state check or
// the callback, or bypass the client's scope rules. response_mode too,
// because the callback reads only a query (form_post would never arrive).
// (request and request_uri carry a request object whose parameters would
// take precedence over these, OpenID Connect Core §6.)
var reservedAuthorizeParams = []string{
	"response_type", "client_id", "redirect_uri", "state",
	"code_challenge", "code_challenge_method", "scope", "response_mode",
	"request", "request_uri",
}

// CheckAuthorizeParam refuses a parameter name the flow owns, also in the
// forms a server may read as that name (reservedAs).
func CheckAuthorizeParam(name string) error {
	if name == "" {
		return errors.New("an authorization parameter needs a name")
	}
	reserved := reservedAs(name)
	switch {
	case reserved == "":
		return nil
	case reserved == "scope" && strings.EqualFold(name, "scope"):
		return errors.New(`authorization parameter "scope" is set by the flow: it is what the device asks for, within the client's scopes`)
	case strings.EqualFold(reserved, name):
		return fmt.Errorf("authorization parameter %q is set by the flow and cannot be configured", name)
	}
	return fmt.Errorf("authorization parameter %q may be read as %q, which is set by the flow and cannot be configured", name, reserved)
}

// reservedAs is the reserved name a server may take name for, or "". Servers
// differ in how they read names, so the comparison is loose: without case
// (Unicode folding), without surrounding spaces and control characters,
// without what follows a '[' (PHP and Rails read scope[] and state[x] as
// scope and state), and with '.' and ' ' inside taken for '_' (PHP does so:
// redirect.uri is redirect_uri).
func reservedAs(name string) string {
	n := strings.TrimFunc(name, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) })
	if i := strings.IndexByte(n, '['); i >= 0 {
		n = n[:i]
	}
	n = strings.NewReplacer(".", "_", " ", "_").Replace(n)
	for _, reserved := range reservedAuthorizeParams {
		if strings.EqualFold(n, reserved) {
			return reserved
		}
	}
	return ""
}

// CheckAuthorizationEndpoint checks an authorization endpoint's URL, and
// that its own query sets none of the flow's parameters: a query is
// carried into every authorization request, so a scope or request_uri
// there would reach the upstream as surely as an authorize_param.
func CheckAuthorizationEndpoint(s string) error {
	if err := CheckEndpointURL(s); err != nil {
		return err
	}
	u, _ := url.Parse(s) // CheckEndpointURL parsed it
	// Pairs that do not parse are dropped when the request is built
	// (authorizeURL), so they never reach the upstream: the rest is checked.
	query, _ := url.ParseQuery(u.RawQuery)
	for _, name := range slices.Sorted(maps.Keys(query)) {
		if err := CheckAuthorizeParam(name); err != nil {
			return fmt.Errorf("its query: %w", err)
		}
	}
	return nil
}

// CheckAuthorizeParams refuses params if one of its names is the flow's;
// the first such name, in sorted order, is the error.
func CheckAuthorizeParams(params url.Values) error {
	for _, name := range slices.Sorted(maps.Keys(params)) {
		if err := CheckAuthorizeParam(name); err != nil {
			return err
		}
	}
	return nil
}

// Paths are the endpoints' URL paths, each under Config.Prefix.
type Paths struct {
	DeviceCode string // device authorization endpoint (RFC 8628 §3.1)
	Token      string // token endpoint (§3.4)
	Verify     string // verification_uri, the person's page (§3.3)
	Callback   string // upstream redirect_uri
	QR         string // QR image of verification_uri_complete
	Metadata   string // RFC 8414 metadata
}

func pathsFor(prefix string) Paths {
	return Paths{
		DeviceCode: prefix + "/device/code",
		Token:      prefix + "/device/token",
		Verify:     prefix + "/device",
		Callback:   prefix + "/auth/redirect",
		QR:         prefix + "/device/qr",
		Metadata:   "/.well-known/oauth-authorization-server" + prefix,
	}
}

const (
	DefaultExpiresIn       = 10 * time.Minute
	DefaultInterval        = 5 * time.Second
	DefaultUpstreamTimeout = 10 * time.Second
	DefaultCodeNetworks    = 3
)

// withDefaults fills what was left out and checks what was given.
func (c Config) withDefaults() (Config, error) {
	c = c.filled()
	errs := []error{c.check()}
	if c.Store == nil {
		errs = append(errs, errors.New("no store"))
	}
	if c.ServerSecret != nil {
		errs = append(errs, CheckServerSecret(c.ServerSecret))
	}
	if c.Pages == nil {
		errs = append(errs, errors.New("no page renderer"))
	}
	return c, errors.Join(errs...)
}

// Check reports what is wrong with the settings, as New would, leaving
// out what only running needs (a store, pages): a configuration's check
// before it is loaded.
func (c Config) Check() error { return c.filled().check() }

// filled is c with the defaults of what was left out.
func (c Config) filled() Config {
	if c.ExpiresIn == 0 {
		c.ExpiresIn = DefaultExpiresIn
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.UpstreamTimeout == 0 {
		c.UpstreamTimeout = DefaultUpstreamTimeout
	}
	if c.UserCode.Length == 0 {
		c.UserCode = codes.Base20
	}
	if c.TokenAuth == "" {
		c.TokenAuth = "basic"
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Audit == nil {
		c.Audit = zap.NewNop()
	}
	if c.CodeNetworks == 0 {
		c.CodeNetworks = DefaultCodeNetworks
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{}
	}
	c.Limits = c.Limits.withDefaults()
	if c.Proximity == "" {
		c.Proximity = ProximityWarn
	}
	if c.ProximityPrefix == (ProximityPrefix{}) {
		c.ProximityPrefix = DefaultProximityPrefix
	}
	if c.Place == nil && c.Locator != nil {
		c.Place = placeNamer(c.Locator)
	}
	return c
}

// check is every rule of the settings, on a filled Config.
func (c Config) check() error {
	var errs []error
	if c.ExpiresIn < 10*time.Second {
		errs = append(errs, fmt.Errorf("expires_in %s is too short (at least 10s)", c.ExpiresIn))
	}
	if c.Interval < time.Second || c.Interval >= c.ExpiresIn {
		errs = append(errs, fmt.Errorf("interval %s must be at least 1s and shorter than expires_in", c.Interval))
	}
	if c.TokenAuth != "basic" && c.TokenAuth != "post" {
		errs = append(errs, fmt.Errorf("token_auth must be basic or post, not %q", c.TokenAuth))
	}
	switch {
	case c.Issuer != "" && (c.AuthorizationEndpoint != "" || c.TokenEndpoint != ""):
		errs = append(errs, errors.New("give either issuer or authorization_endpoint and token_endpoint, not both"))
	case c.Issuer != "":
		if err := CheckEndpointURL(c.Issuer); err != nil {
			errs = append(errs, fmt.Errorf("issuer: %w", err))
		}
	case c.AuthorizationEndpoint == "" || c.TokenEndpoint == "":
		errs = append(errs, errors.New("device_flow needs the upstream: issuer, or both authorization_endpoint and token_endpoint"))
	default:
		if err := CheckAuthorizationEndpoint(c.AuthorizationEndpoint); err != nil {
			errs = append(errs, fmt.Errorf("authorization_endpoint: %w", err))
		}
		if err := CheckEndpointURL(c.TokenEndpoint); err != nil {
			errs = append(errs, fmt.Errorf("token_endpoint: %w", err))
		}
	}
	if err := CheckPrefix(c.Prefix); err != nil {
		errs = append(errs, err)
	}
	if c.BaseURL != "" {
		if err := CheckEndpointURL(c.BaseURL); err != nil {
			errs = append(errs, fmt.Errorf("base_url: %w", err))
		}
	}
	if err := CheckAuthorizeParams(c.AuthorizeParams); err != nil {
		errs = append(errs, fmt.Errorf("authorize_params: %w", err))
	}
	if err := CheckProximityMode(c.Proximity); err != nil {
		errs = append(errs, err)
	}
	if err := c.ProximityPrefix.Check(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Limits.check(); err != nil {
		errs = append(errs, err)
	}
	for _, id := range slices.Sorted(maps.Keys(c.Clients)) {
		if err := CheckAuthorizeParams(c.Clients[id].AuthorizeParams); err != nil {
			errs = append(errs, fmt.Errorf("client %s: authorize_params: %w", id, err))
		}
		if err := CheckProximityMode(c.Clients[id].Proximity); err != nil {
			errs = append(errs, fmt.Errorf("client %s: %w", id, err))
		}
		if err := c.Clients[id].ProximityPrefix.Check(); err != nil {
			errs = append(errs, fmt.Errorf("client %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// CheckServerSecret refuses a server secret shorter than MinServerSecret.
// The error gives the length, never the secret.
func CheckServerSecret(secret []byte) error {
	if len(secret) < MinServerSecret {
		return fmt.Errorf("server_secret is too short: %d bytes, at least %d (e.g. openssl rand -base64 48)", len(secret), MinServerSecret)
	}
	return nil
}

// CheckPrefix accepts "" and paths like /oauth.
func CheckPrefix(p string) error {
	if p != "" && (!strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.ContainsAny(p, "?#")) {
		return fmt.Errorf("prefix must start with / and not end with /, like /oauth: %q", p)
	}
	return nil
}

// CheckEndpointURL accepts absolute http(s) URLs without a fragment.
func CheckEndpointURL(s string) error {
	if s == "" {
		return errors.New("missing")
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("not a URL: %q", s)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("not an absolute http(s) URL: %q", s)
	}
	if u.Fragment != "" {
		return fmt.Errorf("must not have a fragment: %q", s)
	}
	return nil
}
