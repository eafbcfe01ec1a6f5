package deviceflow

import (
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("device_flow", parseCaddyfile)
	// Early, so a site needs no global `order` line: before basic_auth and
	// forward_auth (devices are public clients and must reach us
	// unauthenticated) and before handle/route and the responders.
	httpcaddyfile.RegisterDirectiveOrder("device_flow", httpcaddyfile.Before, "basic_auth")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var handler Handler
	err := handler.UnmarshalCaddyfile(h.Dispenser)
	return &handler, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens:
//
//	device_flow {
//		# the upstream: both endpoints, or an issuer to discover them from
//		authorization_endpoint <url>
//		token_endpoint         <url>
//		issuer                 <url>
//		token_auth       basic|post      # how client secrets are sent; default basic
//		upstream_timeout <duration>      # default 10s
//
//		expires_in <duration>            # default 10m
//		interval   <duration>            # default 5s
//		user_code  base20|digits         # default base20 (XXXX-XXXX); digits: XXX-XXX-XXX
//		prefix     <path>                # put before every path; default none
//		base_url   <url>                 # public origin; default: from each request
//
//		storage badger [<dir>]           # default: device_flow in Caddy's data directory
//		storage redis <url>|<addr...>    # several instances sharing one Redis
//		templates <dir>                  # page overrides, same names as the embedded pages
//
//		client <client_id> {             # allow-list; without any, every client_id passes
//			name   "<display name>"      # shown on the confirmation page
//			secret <upstream secret>     # for a confidential upstream client
//			scopes <scope...>            # allowed scopes
//		}
//
//		guess_limit       <n> per <duration>   # wrong user codes per client IP; default 20 per 15m
//		guess_limit_total <n>                  # wrong user codes server-wide per window; default 2000
//		issue_limit       <n> per <duration>   # device codes per client IP; default 600 per 1m
//		max_live_codes    <n>                  # cap on codes alive at once; default 2000000
//		limits off                             # no limits at all (load tests)
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive's name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		sub := d.Val()
		switch sub {
		case "authorization_endpoint", "token_endpoint", "issuer", "base_url":
			u, err := urlArg(d)
			if err != nil {
				return err
			}
			*h.urlField(sub) = u
		case "token_auth":
			v, err := oneOf(d, "basic", "post")
			if err != nil {
				return err
			}
			h.TokenAuth = v
		case "user_code":
			v, err := oneOf(d, "base20", "digits")
			if err != nil {
				return err
			}
			h.UserCode = v
		case "upstream_timeout", "expires_in", "interval":
			dur, err := durationArg(d)
			if err != nil {
				return err
			}
			*h.durationField(sub) = dur
		case "prefix":
			v, err := singleArg(d)
			if err != nil {
				return err
			}
			if !strings.HasPrefix(v, "/") || strings.HasSuffix(v, "/") || strings.ContainsAny(v, "?#") {
				return d.Errf("prefix must start with / and not end with /, like /oauth: %q", v)
			}
			h.Prefix = v
		case "templates":
			v, err := singleArg(d)
			if err != nil {
				return err
			}
			h.Templates = v
		case "storage":
			if err := h.unmarshalStorage(d); err != nil {
				return err
			}
		case "client":
			if err := h.unmarshalClient(d); err != nil {
				return err
			}
		case "guess_limit", "issue_limit":
			if err := h.unmarshalRateLimit(d, sub); err != nil {
				return err
			}
		case "guess_limit_total", "max_live_codes":
			n, err := countArg(d)
			if err != nil {
				return err
			}
			if sub == "guess_limit_total" {
				h.limits().GuessesTotal = n
			} else {
				h.limits().LiveCodes = n
			}
		case "limits":
			if _, err := oneOf(d, "off"); err != nil {
				return err
			}
			h.limits().Off = true
		default:
			return d.Errf("unrecognized device_flow subdirective %q", sub)
		}
	}
	if h.Issuer != "" && (h.AuthorizationEndpoint != "" || h.TokenEndpoint != "") {
		return d.Err("give either issuer or authorization_endpoint and token_endpoint, not both")
	}
	if h.Issuer == "" && (h.AuthorizationEndpoint == "" || h.TokenEndpoint == "") {
		return d.Err("device_flow needs the upstream: issuer <url>, or both authorization_endpoint and token_endpoint")
	}
	return nil
}

func (h *Handler) urlField(name string) *string {
	switch name {
	case "authorization_endpoint":
		return &h.AuthorizationEndpoint
	case "token_endpoint":
		return &h.TokenEndpoint
	case "issuer":
		return &h.Issuer
	}
	return &h.BaseURL
}

func (h *Handler) durationField(name string) *caddy.Duration {
	switch name {
	case "upstream_timeout":
		return &h.UpstreamTimeout
	case "expires_in":
		return &h.ExpiresIn
	}
	return &h.Interval
}

func (h *Handler) limits() *LimitsConfig {
	if h.Limits == nil {
		h.Limits = new(LimitsConfig)
	}
	return h.Limits
}

// unmarshalStorage reads `storage <backend> ...` by handing the rest of the
// line (and any block) to the backend's module, so new backends bring
// their own syntax.
func (h *Handler) unmarshalStorage(d *caddyfile.Dispenser) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	name := d.Val()
	if h.StorageRaw != nil {
		return d.Err("storage given twice")
	}
	mod, err := caddyfile.UnmarshalModule(d, "device_flow.storage."+name)
	if err != nil {
		return err
	}
	h.StorageRaw = caddyconfig.JSONModuleObject(mod, "backend", name, nil)
	return nil
}

func (h *Handler) unmarshalClient(d *caddyfile.Dispenser) error {
	id, err := singleArgKeepBlock(d)
	if err != nil {
		return err
	}
	if h.Clients == nil {
		h.Clients = make(map[string]*ClientConfig)
	}
	if _, dup := h.Clients[id]; dup {
		return d.Errf("client %q is configured twice", id)
	}
	c := new(ClientConfig)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "name":
			if c.Name, err = singleArg(d); err != nil {
				return err
			}
		case "secret":
			if c.Secret, err = singleArg(d); err != nil {
				return err
			}
		case "scopes":
			c.Scopes = d.RemainingArgs()
			if len(c.Scopes) == 0 {
				return d.ArgErr()
			}
		default:
			return d.Errf("unrecognized client subdirective %q", d.Val())
		}
	}
	h.Clients[id] = c
	return nil
}

// unmarshalRateLimit reads `<name> <n> per <duration>`.
func (h *Handler) unmarshalRateLimit(d *caddyfile.Dispenser, name string) error {
	args := d.RemainingArgs()
	if len(args) != 3 || args[1] != "per" {
		return d.Errf("%s wants: %s <n> per <duration>", name, name)
	}
	n, err := strconv.Atoi(args[0])
	if err != nil || n < 1 {
		return d.Errf("%s: %q is not a positive whole number", name, args[0])
	}
	dur, err := caddy.ParseDuration(args[2])
	if err != nil || dur <= 0 {
		return d.Errf("%s: %q is not a positive duration", name, args[2])
	}
	l := h.limits()
	if name == "guess_limit" {
		l.GuessesPerIP, l.GuessWindow = n, caddy.Duration(dur)
	} else {
		l.IssuePerIP, l.IssueWindow = n, caddy.Duration(dur)
	}
	return nil
}

// singleArg reads exactly one argument and no block.
func singleArg(d *caddyfile.Dispenser) (string, error) {
	name := d.Val()
	v, err := singleArgKeepBlock(d)
	if err == nil && d.NextBlock(d.Nesting()) {
		return "", d.Errf("%s takes no block", name)
	}
	return v, err
}

func singleArgKeepBlock(d *caddyfile.Dispenser) (string, error) {
	if !d.NextArg() {
		return "", d.ArgErr()
	}
	v := d.Val()
	if d.NextArg() {
		return "", d.ArgErr()
	}
	return v, nil
}

func urlArg(d *caddyfile.Dispenser) (string, error) {
	name := d.Val()
	v, err := singleArg(d)
	if err != nil {
		return "", err
	}
	// A placeholder ({env.IDP_URL}) is resolved at run time; check the rest now.
	if !strings.Contains(v, "{") {
		if err := flow.CheckEndpointURL(v); err != nil {
			return "", d.Errf("%s: %v", name, err)
		}
	}
	return v, nil
}

func durationArg(d *caddyfile.Dispenser) (caddy.Duration, error) {
	name := d.Val()
	v, err := singleArg(d)
	if err != nil {
		return 0, err
	}
	dur, err := caddy.ParseDuration(v)
	if err != nil || dur <= 0 {
		return 0, d.Errf("%s: %q is not a positive duration", name, v)
	}
	return caddy.Duration(dur), nil
}

func countArg(d *caddyfile.Dispenser) (int, error) {
	name := d.Val()
	v, err := singleArg(d)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, d.Errf("%s: %q is not a positive whole number", name, v)
	}
	return n, nil
}

func oneOf(d *caddyfile.Dispenser, allowed ...string) (string, error) {
	name := d.Val()
	v, err := singleArg(d)
	if err != nil {
		return "", err
	}
	for _, a := range allowed {
		if v == a {
			return v, nil
		}
	}
	return "", d.Errf("%s must be %s, not %q", name, strings.Join(allowed, " or "), v)
}

// UnmarshalCaddyfile reads `badger [<dir>]`.
func (b *BadgerStorage) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // "badger"
	if d.NextArg() {
		b.Dir = d.Val()
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	// A block would be ignored, and `dir` in it silently with it.
	if d.NextBlock(0) {
		return d.Errf("storage badger takes no block; give the folder on the line: storage badger <dir>")
	}
	return nil
}

var (
	_ caddyfile.Unmarshaler = (*Handler)(nil)
	_ caddyfile.Unmarshaler = (*BadgerStorage)(nil)
)
