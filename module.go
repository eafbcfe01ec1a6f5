// Package deviceflow is a Caddy v2 HTTP handler that adds the OAuth 2.0
// Device Authorization Grant (RFC 8628) in front of any OAuth 2.0 or OpenID
// Connect server: devices ask it for a code, people approve at the real
// authorization server (authorization code + PKCE), and the device picks up
// the tokens. The protocol lives in package flow; this file adapts it to
// Caddy.
package deviceflow

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/contrib/propagators/autoprop"
	"go.uber.org/zap"

	_ "github.com/caddy-device-flow/caddy-device-flow/devicelogin" // the `caddy device-login` command
	"github.com/caddy-device-flow/caddy-device-flow/flow"
	"github.com/caddy-device-flow/caddy-device-flow/flow/codes"
	"github.com/caddy-device-flow/caddy-device-flow/templates"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler is the device_flow HTTP handler. It answers its own paths (see
// flow.Paths) and passes every other request to the next handler.
type Handler struct {
	// Name identifies this handler's records (pending codes, sign-ins,
	// limit counters, server secret) in the store. Handlers with the same
	// name share them: the same site on several instances, or across
	// config reloads. Handlers with different names on one store never see
	// each other's. When empty, the name is made from the settings that
	// decide where people are sent: issuer (or authorization_endpoint and
	// token_endpoint), base_url and prefix, with placeholders resolved; a
	// reload that changes anything else keeps the pending codes.
	Name string `json:"name,omitempty"`

	// AuthorizationEndpoint is the upstream's authorization endpoint, where
	// people sign in. Give it with TokenEndpoint, or Issuer instead.
	AuthorizationEndpoint string `json:"authorization_endpoint,omitempty"`
	// TokenEndpoint is the upstream's token endpoint, where the
	// authorization code is exchanged and refresh tokens are relayed.
	TokenEndpoint string `json:"token_endpoint,omitempty"`
	// Issuer is the upstream's issuer URL. Its OpenID Connect (or RFC
	// 8414) metadata is read at every provision, so a reload picks up
	// changes, to find both endpoints. Metadata that is wrong fails the
	// load; an issuer that does not answer does not: the endpoints
	// answer 503 while its metadata is read again in the background.
	Issuer string `json:"issuer,omitempty"`
	// TokenAuth is how client secrets reach the upstream token endpoint:
	// "basic" (HTTP Basic, the default) or "post" (in the form).
	TokenAuth string `json:"token_auth,omitempty"`
	// UpstreamTimeout bounds every call to the upstream. Default: 10s.
	UpstreamTimeout caddy.Duration `json:"upstream_timeout,omitempty"`
	// AuthorizeParams are extra parameters of every authorization request,
	// by name, for what an IdP needs beyond scope: {"access_type":
	// ["offline"], "prompt": ["consent"]} for Google's refresh tokens,
	// "audience" for Auth0, "resource" (RFC 8707) for Entra ID and ADFS,
	// "acr_values", "max_age", "login_hint". Values may be {env.*}
	// placeholders. A client's own replace these name by name. The names
	// the flow sets are refused: response_type, client_id, redirect_uri,
	// state, code_challenge, code_challenge_method, scope, response_mode.
	AuthorizeParams map[string][]string `json:"authorize_params,omitempty"`

	// ExpiresIn is the lifetime of a device code. Default: 10m.
	ExpiresIn caddy.Duration `json:"expires_in,omitempty"`
	// Interval is how long a device waits between polls. Default: 5s.
	Interval caddy.Duration `json:"interval,omitempty"`
	// UserCode is the user code format: "base20" (the default,
	// XXXX-XXXX) or "digits" (XXX-XXX-XXX).
	UserCode string `json:"user_code,omitempty"`

	// Prefix goes before every path ("/oauth" makes /oauth/device/code);
	// it starts with a slash and does not end with one. Default: none.
	Prefix string `json:"prefix,omitempty"`
	// BaseURL is the public origin ("https://auth.example.com") used in
	// the URLs given to devices and the upstream. Default: each request's
	// own scheme and host.
	BaseURL string `json:"base_url,omitempty"`
	// HSTS is the Strict-Transport-Security header of the handler's
	// answers over HTTPS. Default: max-age=31536000 (one year), without
	// includeSubDomains, which would reach every name under the site's
	// domain. A value the site sets with Caddy's header directive wins.
	HSTS *HSTSConfig `json:"hsts,omitempty"`

	// Templates is a folder of page overrides: the embedded pages' file
	// names, plus messages.<lang>.json catalogues.
	Templates string `json:"templates,omitempty"`

	// Clients is the allow-list, by client_id. Empty lets every client_id
	// in.
	Clients map[string]*ClientConfig `json:"clients,omitempty"`

	// Limits are the guess and flood limits; unset ones take the defaults.
	Limits *LimitsConfig `json:"limits,omitempty"`

	// IssueFrom are the only networks device codes are issued to: CIDRs
	// ("192.0.2.0/24") or single addresses, matched against the client
	// address as Caddy sees it (trusted_proxies). A device elsewhere gets
	// unauthorized_client. Empty: anywhere. A client's own list replaces
	// it.
	IssueFrom []string `json:"issue_from,omitempty"`
	// CodeNetworks locks a user code opened from more networks (IPv4 /24,
	// IPv6 /56) than this: it can no longer be approved and its device
	// gets access_denied. 0 turns the lock off. Default: 3.
	CodeNetworks *int `json:"code_networks,omitempty"`
	// ServerSecret is the server secret, from the configuration rather
	// than the store (not a client's upstream secret): at least 32 bytes,
	// best from the environment ("{env.DEVICE_FLOW_SECRET}"); the same on
	// every instance sharing a store. With it, cookies, states and device
	// codes are keyed by it, and every record in the store is
	// authenticated under it, so that whoever can write to the store
	// cannot make the flow hand out or seal tokens (docs/security.md).
	// Without it, a secret is made and kept in the store. Setting or
	// changing it makes codes and sign-ins in progress start over.
	ServerSecret string `json:"server_secret,omitempty"`

	// GeoIP is the path of a MaxMind-format database (.mmdb, e.g.
	// GeoLite2-City): the confirmation page then names the city and
	// country the code was asked for from, and the proximity check also
	// compares countries. Read whole and verified at load; a missing or
	// corrupt file fails the load.
	GeoIP string `json:"geoip,omitempty"`
	// Proximity is what happens when the person approving is not on the
	// network the code was asked for from: "warn" (the default: a warning
	// on the confirmation page), "require" (Approve is refused) or "off".
	Proximity string `json:"proximity,omitempty"`
	// ProximityPrefix is how many leading bits make one network for the
	// proximity check. Default: IPv4 24, IPv6 56.
	ProximityPrefix *ProximityPrefix `json:"proximity_prefix,omitempty"`

	// StorageRaw is the store, a module in the http.device_flow.storage
	// namespace named by "backend": "badger" (the default, an embedded
	// database) or "redis" (shared by several instances).
	StorageRaw json.RawMessage `json:"storage,omitempty" caddy:"namespace=http.device_flow.storage inline_key=backend"`

	service *flow.Service
	logger  *zap.Logger
	// geoipKey names this handler's hold on the shared GeoIP database.
	geoipKey string
	// unregister takes the handler out of the admin API's registry.
	unregister func()
}

// ClientConfig is one allowed client.
type ClientConfig struct {
	// Name is the client's display name, shown on the confirmation page.
	Name string `json:"name,omitempty"`
	// Secret is the client's secret at the upstream, for a confidential
	// client; the device never gets it.
	Secret string `json:"secret,omitempty"`
	// Scopes are the scopes the client may ask for (and the default when
	// it asks for none); empty allows any.
	Scopes []string `json:"scopes,omitempty"`
	// AuthorizeParams are this client's extra authorization request
	// parameters; each replaces the handler's parameter of the same name.
	AuthorizeParams map[string][]string `json:"authorize_params,omitempty"`
	// IssueFrom replaces the handler's issue_from for this client.
	IssueFrom []string `json:"issue_from,omitempty"`
	// Proximity and ProximityPrefix replace the handler's for this client.
	Proximity       string           `json:"proximity,omitempty"`
	ProximityPrefix *ProximityPrefix `json:"proximity_prefix,omitempty"`
}

// ProximityPrefix is how many leading bits two addresses must share to be
// one network.
type ProximityPrefix struct {
	IPv4 int `json:"ipv4"`
	IPv6 int `json:"ipv6"`
}

// flow is p for the protocol core: the zero value (its default) when not
// given. One given must have its bits, which zero would silently make the
// default.
func (p *ProximityPrefix) flow() (flow.ProximityPrefix, error) {
	if p == nil {
		return flow.ProximityPrefix{}, nil
	}
	fp := flow.ProximityPrefix{IPv4: p.IPv4, IPv6: p.IPv6}
	if err := fp.CheckBits(); err != nil {
		return flow.ProximityPrefix{}, err
	}
	return fp, nil
}

// HSTSConfig is the Strict-Transport-Security header (RFC 6797).
type HSTSConfig struct {
	// MaxAge is how long browsers keep to HTTPS. Default: 1 year.
	MaxAge caddy.Duration `json:"max_age,omitempty"`
	// IncludeSubdomains extends it to every name under the site's.
	IncludeSubdomains bool `json:"include_subdomains,omitempty"`
	// Preload asks to be put on browsers' preload lists (hstspreload.org),
	// which needs IncludeSubdomains and a MaxAge of at least a year.
	Preload bool `json:"preload,omitempty"`
	// Off sends no header.
	Off bool `json:"off,omitempty"`
}

// value is the header value, "" for none.
func (c *HSTSConfig) value() string {
	switch {
	case c == nil:
		return flow.DefaultHSTS
	case c.Off:
		return ""
	}
	maxAge := time.Duration(c.MaxAge)
	if maxAge == 0 {
		maxAge = hstsYear
	}
	return flow.HSTSValue(maxAge, c.IncludeSubdomains, c.Preload)
}

const hstsYear = 365 * 24 * time.Hour

// validate refuses what browsers would ignore or preload lists refuse.
func (c *HSTSConfig) validate() error {
	switch {
	case c == nil || c.Off:
		return nil
	case c.MaxAge < 0:
		return fmt.Errorf("hsts: max_age must not be negative, not %s", time.Duration(c.MaxAge))
	case c.Preload && (!c.IncludeSubdomains || c.MaxAge != 0 && time.Duration(c.MaxAge) < hstsYear):
		return errors.New("hsts: preload needs include_subdomains and a max_age of at least one year (hstspreload.org)")
	}
	return nil
}

// LimitsConfig sets the guess and flood limits (see flow.Limits); zero
// values take the defaults.
type LimitsConfig struct {
	// GuessLimit is how many wrong user codes one client address may
	// enter per window (IPv6: one /64; a /56 and a /48 4 and 16 times as
	// many). Default: 20 per 15m.
	GuessLimit *RateLimit `json:"guess_limit,omitempty"`
	// GuessLimitTotal is how many wrong user codes the whole handler
	// accepts per guess window, from every address together; past it,
	// each address may have 3 wrong codes in the window, so people typing
	// right codes are still served. Default: 2000.
	GuessLimitTotal int `json:"guess_limit_total,omitempty"`
	// IssueLimit is how many device codes one client address may get per
	// window. Default: 600 per 1m.
	IssueLimit *RateLimit `json:"issue_limit,omitempty"`
	// RefreshLimit is how many refresh_token relays one client address
	// may make per window (IPv6 prefixes as GuessLimit); past 100 times as
	// many for one client_id from every address together, each address
	// may make 5 in the window. Default: 60 per 1m.
	RefreshLimit *RateLimit `json:"refresh_limit,omitempty"`
	// MaxLiveCodes caps the device codes alive at once. Default: 2000000.
	MaxLiveCodes int `json:"max_live_codes,omitempty"`
	// Off turns every limit off (for load tests).
	Off bool `json:"off,omitempty"`
}

// RateLimit is a count per window.
type RateLimit struct {
	// Count is how many are allowed per window.
	Count int `json:"count"`
	// Per is the window.
	Per caddy.Duration `json:"per"`
}

// flow sets count and per from r when it is given. One given must have
// both, positive (flow.CheckRate): a zero would silently be the default,
// and a refused one is left out, so that only this error names it.
func (r *RateLimit) flow(name string, count *int, per *time.Duration) error {
	if r == nil {
		return nil
	}
	if err := flow.CheckRate(name, r.Count, time.Duration(r.Per)); err != nil {
		return err
	}
	*count, *per = r.Count, time.Duration(r.Per)
	return nil
}

// StorageProvider is a guest module in the http.device_flow.storage
// namespace: it opens its database in Provision and lets go of it in
// Cleanup. Store returns one handler's view of it; views of different
// namespaces never see each other's records.
type StorageProvider interface {
	Store(namespace string) flow.Store
}

// liveCodesExpecter is a StorageProvider that wants to know how many live
// codes its handler may keep (max_live_codes), to warn when they cannot
// fit.
type liveCodesExpecter interface {
	expectLiveCodes(n int)
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.device_flow",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision sets the handler up: upstream endpoints, store, pages.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	cfg, err := h.flowConfig(ctx)
	if err != nil {
		return err
	}
	if h.StorageRaw == nil {
		h.StorageRaw = json.RawMessage(`{"backend":"badger"}`)
	}
	mod, err := ctx.LoadModule(h, "StorageRaw")
	if err != nil {
		return fmt.Errorf("loading storage: %v", err)
	}
	if err := h.claimIdentity(ctx, mod); err != nil {
		return err
	}
	if s, ok := mod.(liveCodesExpecter); ok {
		s.expectLiveCodes(cfg.Limits.LiveCodeCap())
	}
	cfg.Store = mod.(StorageProvider).Store(h.namespace())
	if cfg.ServerSecret, err = h.serverSecret(); err != nil {
		return err
	}
	if cfg.Pages, err = templates.New(h.Templates); err != nil {
		return fmt.Errorf("templates: %v", err)
	}
	if h.GeoIP != "" {
		if cfg.Locator, h.geoipKey, err = openGeoIP(h.GeoIP); err != nil {
			return err
		}
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if h.service, err = flow.New(sctx, cfg); err != nil {
		return err
	}
	h.unregister = h.registerAdmin()
	return nil
}

// Cleanup takes the handler out of the admin API and stops the service's
// background discovery of the issuer, if one runs, when the config is
// unloaded (or failed to load).
func (h *Handler) Cleanup() error {
	if h.unregister != nil {
		h.unregister()
	}
	if h.geoipKey != "" {
		geoipPool.Delete(h.geoipKey)
	}
	if h.service != nil {
		h.service.Close()
	}
	return nil
}

// flowConfig turns the JSON configuration into the protocol core's, with
// placeholders resolved and what running needs.
func (h *Handler) flowConfig(ctx caddy.Context) (flow.Config, error) {
	// {env.*} placeholders keep URLs and secrets out of the Caddyfile.
	repl := caddy.NewReplacer()
	for _, field := range []*string{&h.Name, &h.AuthorizationEndpoint, &h.TokenEndpoint, &h.Issuer, &h.BaseURL, &h.Templates, &h.GeoIP} {
		*field = repl.ReplaceKnown(*field, "")
	}
	cfg, err := h.settings()
	if err != nil {
		return cfg, err
	}
	cfg.AuthorizeParams = replaceParams(repl, h.AuthorizeParams)
	for id, c := range cfg.Clients {
		if c.Secret, err = clientSecret(repl, id, c.Secret); err != nil {
			return cfg, err
		}
		c.AuthorizeParams = replaceParams(repl, c.AuthorizeParams)
		cfg.Clients[id] = c
	}
	cfg.Logger = h.logger
	cfg.ClientIP = caddyClientIP
	cfg.Observer = newMetrics(ctx, h.logger)
	// Its own logger, so that `log { include
	// http.handlers.device_flow.audit }` sends the events elsewhere.
	cfg.Audit = h.logger.Named("audit").With(zap.String("handler", h.adminID()))
	cfg.HTTPClient = &http.Client{
		// With Caddy's tracing directive, each upstream call is a span
		// under the request's (none outside a request: discovery at load
		// and in the background), and the trace context goes on to the
		// upstream in the headers Caddy's propagators name (OTEL_PROPAGATORS).
		Transport: otelhttp.NewTransport(http.DefaultTransport, otelhttp.WithPropagators(autoprop.NewTextMapPropagator())),
		// Never follow an upstream's redirect with our client credentials.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return cfg, nil
}

// settings are the protocol core's settings as the JSON gives them,
// placeholders unresolved: what Validate checks (with flow.Config.Check)
// and flowConfig completes.
func (h *Handler) settings() (flow.Config, error) {
	cfg := flow.Config{
		AuthorizeParams:       url.Values(h.AuthorizeParams),
		AuthorizationEndpoint: h.AuthorizationEndpoint,
		TokenEndpoint:         h.TokenEndpoint,
		Issuer:                h.Issuer,
		TokenAuth:             h.TokenAuth,
		UpstreamTimeout:       time.Duration(h.UpstreamTimeout),
		ExpiresIn:             time.Duration(h.ExpiresIn),
		Interval:              time.Duration(h.Interval),
		Prefix:                h.Prefix,
		BaseURL:               h.BaseURL,
		HSTS:                  h.HSTS.value(),
		Proximity:             flow.ProximityMode(h.Proximity),
	}
	var errs []error
	var err error
	if cfg.ProximityPrefix, err = h.ProximityPrefix.flow(); err != nil {
		errs = append(errs, err)
	}
	if cfg.IssueFrom, err = flow.ParseNetworks(h.IssueFrom); err != nil {
		errs = append(errs, fmt.Errorf("issue_from: %w", err))
	}
	switch n := h.CodeNetworks; {
	case n == nil:
	case *n == 0:
		cfg.CodeNetworks = -1 // off
	default:
		cfg.CodeNetworks = *n
	}
	switch h.UserCode {
	case "", "base20":
		cfg.UserCode = codes.Base20
	case "digits":
		cfg.UserCode = codes.Digits
	default:
		errs = append(errs, fmt.Errorf("user_code must be base20 or digits, not %q", h.UserCode))
	}
	if len(h.Clients) > 0 {
		cfg.Clients = make(map[string]flow.Client, len(h.Clients))
		for _, id := range slices.Sorted(maps.Keys(h.Clients)) {
			c := h.Clients[id]
			if c == nil {
				c = &ClientConfig{}
			}
			issueFrom, err := flow.ParseNetworks(c.IssueFrom)
			if err != nil {
				errs = append(errs, fmt.Errorf("client %s: issue_from: %w", id, err))
			}
			prefix, err := c.ProximityPrefix.flow()
			if err != nil {
				errs = append(errs, fmt.Errorf("client %s: %w", id, err))
			}
			cfg.Clients[id] = flow.Client{Name: c.Name, Secret: c.Secret, Scopes: c.Scopes,
				AuthorizeParams: url.Values(c.AuthorizeParams), IssueFrom: issueFrom,
				Proximity: flow.ProximityMode(c.Proximity), ProximityPrefix: prefix}
		}
	}
	if l := h.Limits; l != nil {
		cfg.Limits = flow.Limits{GuessesTotal: l.GuessLimitTotal, LiveCodes: l.MaxLiveCodes, Off: l.Off}
		errs = append(errs,
			l.GuessLimit.flow("guess_limit", &cfg.Limits.GuessesPerIP, &cfg.Limits.GuessWindow),
			l.IssueLimit.flow("issue_limit", &cfg.Limits.IssuePerIP, &cfg.Limits.IssueWindow),
			l.RefreshLimit.flow("refresh_limit", &cfg.Limits.RefreshPerIP, &cfg.Limits.RefreshWindow))
	}
	return cfg, errors.Join(errs...)
}

// serverSecret resolves ServerSecret's placeholders and binds the result
// to this handler's namespace, so that handlers given one secret still
// derive keys of their own; nil when none is configured. It is never
// logged or put in an error.
func (h *Handler) serverSecret() ([]byte, error) {
	if h.ServerSecret == "" {
		return nil, nil
	}
	secret := caddy.NewReplacer().ReplaceKnown(h.ServerSecret, "")
	if strings.TrimSpace(secret) == "" {
		if placeholders := placeholderPattern.FindAllString(h.ServerSecret, -1); len(placeholders) > 0 {
			return nil, fmt.Errorf("server_secret is empty after expanding %s (is the variable set?)", strings.Join(placeholders, ", "))
		}
		return nil, errors.New("server_secret is empty")
	}
	if err := flow.CheckServerSecret([]byte(secret)); err != nil {
		return nil, err
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("caddy-device-flow handler\x00" + h.namespace()))
	return m.Sum(nil), nil
}

// clientSecret resolves the {env.*} placeholders of a client's secret. A
// secret that was given but comes out empty (an unset variable) is an
// error: taken as no secret, it would silently make a public client. The
// error names only the placeholders, which are all the given text was.
func clientSecret(repl *caddy.Replacer, id, given string) (string, error) {
	secret := repl.ReplaceKnown(given, "")
	if given == "" {
		return "", nil
	}
	return secret, checkClientSecret(id, given, secret)
}

// checkClientSecret refuses a secret that was given but is blank once
// resolved (the Caddyfile checks one without placeholders as given).
func checkClientSecret(id, given, secret string) error {
	if strings.TrimSpace(secret) != "" {
		return nil
	}
	if placeholders := placeholderPattern.FindAllString(given, -1); len(placeholders) > 0 {
		return fmt.Errorf("client %s: secret is empty after expanding %s (is the variable set?)", id, strings.Join(placeholders, ", "))
	}
	return fmt.Errorf("client %s: secret is empty", id)
}

var placeholderPattern = regexp.MustCompile(`\{[^{}]*\}`)

// replaceParams resolves the {env.*} placeholders in parameter values, so
// an audience or login hint can come from the environment.
func replaceParams(repl *caddy.Replacer, params map[string][]string) url.Values {
	if len(params) == 0 {
		return nil
	}
	out := make(url.Values, len(params))
	for name, vals := range params {
		for _, v := range vals {
			out.Add(name, repl.ReplaceKnown(v, ""))
		}
	}
	return out
}

// Validate checks the settings: the protocol core's rules
// (flow.Config.Check), and those of the JSON's own shapes. The Caddyfile
// calls it too, before placeholders can be resolved: a URL with one is
// checked once resolved, when flow.New is given it.
func (h *Handler) Validate() error {
	cfg, err := h.settings()
	errs := []error{err}
	for _, u := range []*string{&cfg.Issuer, &cfg.AuthorizationEndpoint, &cfg.TokenEndpoint, &cfg.BaseURL} {
		if strings.Contains(*u, "{") {
			*u = "https://resolved.at.load.invalid/"
		}
	}
	errs = append(errs, cfg.Check(), h.HSTS.validate())
	// In JSON 0 is off and leaving it out the default: a negative means nothing.
	if n := h.CodeNetworks; n != nil && *n < 0 {
		errs = append(errs, fmt.Errorf("code_networks must be 0 (off) or more, not %d", *n))
	}
	return errors.Join(errs...)
}

// caddyClientIP is the client address as Caddy determined it, honouring
// trusted_proxies (never a raw X-Forwarded-For).
func caddyClientIP(r *http.Request) string {
	ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	return ip
}

// ServeHTTP answers the device flow's paths and hands on everything else.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if !h.service.Handles(r) {
		return next.ServeHTTP(w, r)
	}
	h.service.ServeHTTP(w, r)
	return nil
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
