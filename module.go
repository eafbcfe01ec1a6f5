// Package deviceflow is a Caddy v2 HTTP handler that adds the OAuth 2.0
// Device Authorization Grant (RFC 8628) in front of any OAuth 2.0 or OpenID
// Connect server: devices ask it for a code, people approve at the real
// authorization server (authorization code + PKCE), and the device picks up
// the tokens. The protocol lives in package flow; this file adapts it to
// Caddy.
package deviceflow

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	_ "github.com/caddy-device-flow/caddy-device-flow/devicelogin" // the `caddy device-login` command
	"github.com/caddy-device-flow/caddy-device-flow/flow"
	"github.com/caddy-device-flow/caddy-device-flow/templates"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler is the device_flow HTTP handler. It answers its own paths (see
// flow.Paths) and passes every other request to the next handler.
type Handler struct {
	// The upstream's endpoints. Give both, or Issuer instead.
	AuthorizationEndpoint string `json:"authorization_endpoint,omitempty"`
	TokenEndpoint         string `json:"token_endpoint,omitempty"`
	// Issuer is read for its OpenID Connect / RFC 8414 metadata at every
	// provision (so a reload picks up changes) to fill both endpoints.
	Issuer string `json:"issuer,omitempty"`
	// TokenAuth is how client secrets reach the upstream: "basic"
	// (default) or "post".
	TokenAuth       string         `json:"token_auth,omitempty"`
	UpstreamTimeout caddy.Duration `json:"upstream_timeout,omitempty"`

	ExpiresIn caddy.Duration `json:"expires_in,omitempty"` // default 10m
	Interval  caddy.Duration `json:"interval,omitempty"`   // default 5s
	// UserCode is "base20" (default, XXXX-XXXX) or "digits" (XXX-XXX-XXX).
	UserCode string `json:"user_code,omitempty"`

	// Prefix goes before every path; BaseURL overrides the public origin
	// taken from requests.
	Prefix  string `json:"prefix,omitempty"`
	BaseURL string `json:"base_url,omitempty"`

	// Templates is a folder of page overrides (same names as the embedded
	// pages, plus messages.<lang>.json catalogues).
	Templates string `json:"templates,omitempty"`

	// Clients is the allow-list by client_id; empty lets every client in.
	Clients map[string]*ClientConfig `json:"clients,omitempty"`

	Limits *LimitsConfig `json:"limits,omitempty"`

	// StorageRaw picks the store: {"backend": "badger", ...} (default) or
	// {"backend": "redis", ...}.
	StorageRaw json.RawMessage `json:"storage,omitempty" caddy:"namespace=device_flow.storage inline_key=backend"`

	service *flow.Service
	logger  *zap.Logger
}

// ClientConfig is one allowed client.
type ClientConfig struct {
	Name   string   `json:"name,omitempty"`
	Secret string   `json:"secret,omitempty"`
	Scopes []string `json:"scopes,omitempty"`
}

// LimitsConfig sets the guess and flood limits (see flow.Limits).
type LimitsConfig struct {
	GuessesPerIP int            `json:"guesses_per_ip,omitempty"`
	GuessesTotal int            `json:"guesses_total,omitempty"`
	GuessWindow  caddy.Duration `json:"guess_window,omitempty"`
	IssuePerIP   int            `json:"issue_per_ip,omitempty"`
	IssueWindow  caddy.Duration `json:"issue_window,omitempty"`
	LiveCodes    int            `json:"live_codes,omitempty"`
	Off          bool           `json:"off,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.device_flow",
		New: func() caddy.Module { return new(Handler) },
	}
}

// clock is the time source; tests replace it before starting Caddy.
var clock = time.Now

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
	cfg.Store = mod.(StorageProvider).Store()
	if cfg.Pages, err = templates.New(h.Templates); err != nil {
		return fmt.Errorf("templates: %v", err)
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	h.service, err = flow.New(sctx, cfg)
	return err
}

// flowConfig turns the JSON configuration into the protocol core's.
func (h *Handler) flowConfig(ctx caddy.Context) (flow.Config, error) {
	// {env.*} placeholders keep URLs and secrets out of the Caddyfile.
	repl := caddy.NewReplacer()
	for _, field := range []*string{&h.AuthorizationEndpoint, &h.TokenEndpoint, &h.Issuer, &h.BaseURL, &h.Templates} {
		*field = repl.ReplaceKnown(*field, "")
	}
	cfg := flow.Config{
		AuthorizationEndpoint: h.AuthorizationEndpoint,
		TokenEndpoint:         h.TokenEndpoint,
		TokenAuth:             h.TokenAuth,
		UpstreamTimeout:       time.Duration(h.UpstreamTimeout),
		ExpiresIn:             time.Duration(h.ExpiresIn),
		Interval:              time.Duration(h.Interval),
		Prefix:                h.Prefix,
		BaseURL:               h.BaseURL,
		Logger:                h.logger,
		ClientIP:              caddyClientIP,
		Now:                   func() time.Time { return clock() },
		Observer:              newMetrics(ctx, h.logger),
	}
	cfg.HTTPClient = &http.Client{
		// Never follow an upstream's redirect with our client credentials.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	switch h.UserCode {
	case "", "base20":
		cfg.UserCode = flow.Base20
	case "digits":
		cfg.UserCode = flow.Digits
	default:
		return cfg, fmt.Errorf("user_code must be base20 or digits, not %q", h.UserCode)
	}
	if len(h.Clients) > 0 {
		cfg.Clients = make(map[string]flow.Client, len(h.Clients))
		for id, c := range h.Clients {
			if c == nil {
				c = &ClientConfig{}
			}
			cfg.Clients[id] = flow.Client{Name: c.Name, Secret: repl.ReplaceKnown(c.Secret, ""), Scopes: c.Scopes}
		}
	}
	if l := h.Limits; l != nil {
		cfg.Limits = flow.Limits{
			GuessesPerIP: l.GuessesPerIP, GuessesTotal: l.GuessesTotal, GuessWindow: time.Duration(l.GuessWindow),
			IssuePerIP: l.IssuePerIP, IssueWindow: time.Duration(l.IssueWindow), LiveCodes: l.LiveCodes, Off: l.Off,
		}
	}
	if h.Issuer != "" {
		if h.AuthorizationEndpoint != "" || h.TokenEndpoint != "" {
			return cfg, fmt.Errorf("issuer and explicit endpoints exclude each other; give one or the other")
		}
		dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		md, err := flow.Discover(dctx, cfg.HTTPClient, h.Issuer)
		if err != nil {
			return cfg, fmt.Errorf("upstream discovery: %v", err)
		}
		cfg.AuthorizationEndpoint, cfg.TokenEndpoint = md.AuthorizationEndpoint, md.TokenEndpoint
		cfg.ScopesSupported = md.ScopesSupported
		h.logger.Info("discovered upstream", zap.String("issuer", h.Issuer),
			zap.String("authorization_endpoint", md.AuthorizationEndpoint), zap.String("token_endpoint", md.TokenEndpoint))
	}
	return cfg, nil
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
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
