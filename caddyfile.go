package deviceflow

import (
	"fmt"
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
//		name <name>                      # identifies this handler's records in the store; default: from the upstream, base_url and prefix
//
//		# the upstream: both endpoints, or an issuer to discover them from
//		authorization_endpoint <url>
//		token_endpoint         <url>
//		issuer                 <url>
//		token_auth       basic|post      # how client secrets are sent; default basic
//		upstream_timeout <duration>      # default 10s
//		authorize_param  <name> <value>  # added to the authorization request; repeatable
//
//		expires_in <duration>            # default 10m
//		interval   <duration>            # default 5s
//		user_code  base20|digits         # default base20 (XXXX-XXXX); digits: XXX-XXX-XXX
//		prefix     <path>                # put before every path; default none
//		base_url   <url>                 # public origin; default: from each request
//		hsts <max-age>|off [include_subdomains] [preload]  # Strict-Transport-Security over HTTPS; default 365d
//
//		storage badger [<dir>] [{ min_free <size> }]   # default: device_flow in Caddy's data directory; min_free 64MiB
//		storage redis <url>|<addr...>    # several instances sharing one Redis
//		templates <dir>                  # page overrides, same names as the embedded pages
//		server_secret <secret>           # at least 32 bytes, e.g. {env.DEVICE_FLOW_SECRET}; authenticates the store's records
//
//		geoip <path.mmdb>                # MaxMind-format database: city and country on the confirmation page
//		proximity off|warn|require       # person not on the device's network: warn (default) or refuse Approve
//		proximity_prefix <v4 bits> <v6 bits>  # one network for proximity; default 24 56
//
//		client <client_id> {             # allow-list; without any, every client_id passes
//			name   "<display name>"      # shown on the confirmation page
//			secret <upstream secret>     # for a confidential upstream client
//			scopes <scope...>            # allowed scopes
//			authorize_param <name> <value>  # replaces the site's parameter of that name
//			issue_from <cidr...>         # replaces the site's issue_from for this client
//			proximity off|warn|require   # replaces the site's
//			proximity_prefix <v4 bits> <v6 bits>
//		}
//
//		issue_from    <cidr...>|private_ranges  # issue device codes only to these networks; repeatable; default anywhere
//		code_networks <n>|off            # lock a code opened from more networks (IPv4 /24, IPv6 /56); default 3
//
//		guess_limit       <n> per <duration>   # wrong user codes per client IP (IPv6 /64; 4× per /56, 16× per /48); default 20 per 15m
//		guess_limit_total <n>                  # wrong user codes server-wide per window, past which each IP is held to 3; default 2000
//		issue_limit       <n> per <duration>   # device codes per client IP; default 600 per 1m
//		refresh_limit     <n> per <duration>   # refresh_token relays per client IP (prefixes as guess_limit); 100× per client_id, past which each IP is held to 20; default 60 per 1m
//		max_live_codes    <n>                  # cap on codes alive at once; default 2000000
//		limits off                             # no limits at all (load tests)
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive's name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "name":
			h.Name, err = singleArg(d)
		case "authorization_endpoint":
			h.AuthorizationEndpoint, err = urlArg(d, flow.CheckAuthorizationEndpoint)
		case "token_endpoint":
			h.TokenEndpoint, err = urlArg(d, flow.CheckEndpointURL)
		case "issuer":
			h.Issuer, err = urlArg(d, flow.CheckEndpointURL)
		case "base_url":
			h.BaseURL, err = urlArg(d, flow.CheckEndpointURL)
		case "hsts":
			h.HSTS, err = hstsArg(d)
		case "token_auth":
			h.TokenAuth, err = oneOf(d, "basic", "post")
		case "upstream_timeout":
			h.UpstreamTimeout, err = durationArg(d)
		case "authorize_param":
			err = authorizeParamArg(d, &h.AuthorizeParams)
		case "expires_in":
			h.ExpiresIn, err = durationArg(d)
		case "interval":
			h.Interval, err = durationArg(d)
		case "user_code":
			h.UserCode, err = oneOf(d, "base20", "digits")
		case "prefix":
			if h.Prefix, err = singleArg(d); err == nil {
				err = lineErr(d, flow.CheckPrefix(h.Prefix))
			}
		case "templates":
			h.Templates, err = singleArg(d)
		case "server_secret":
			// One with a placeholder ({env.*}) is checked once resolved.
			if h.ServerSecret, err = singleArg(d); err == nil && !strings.Contains(h.ServerSecret, "{") {
				err = lineErr(d, flow.CheckServerSecret([]byte(h.ServerSecret)))
			}
		case "geoip":
			h.GeoIP, err = singleArg(d)
		case "proximity":
			h.Proximity, err = oneOf(d, "off", "warn", "require")
		case "proximity_prefix":
			h.ProximityPrefix, err = proximityPrefixArg(d)
		case "storage":
			err = h.unmarshalStorage(d)
		case "client":
			err = h.unmarshalClient(d)
		case "guess_limit":
			h.limits().GuessLimit, err = rateLimitArg(d)
		case "guess_limit_total":
			h.limits().GuessLimitTotal, err = countArg(d)
		case "issue_limit":
			h.limits().IssueLimit, err = rateLimitArg(d)
		case "refresh_limit":
			h.limits().RefreshLimit, err = rateLimitArg(d)
		case "max_live_codes":
			h.limits().MaxLiveCodes, err = countArg(d)
		case "limits":
			if _, err = oneOf(d, "off"); err == nil {
				h.limits().Off = true
			}
		case "issue_from":
			err = issueFromArgs(d, &h.IssueFrom)
		case "code_networks":
			h.CodeNetworks, err = codeNetworksArg(d)
		default:
			return unrecognized(d, "device_flow", siteSubdirectives)
		}
		if err != nil {
			return err
		}
	}
	if err := h.Validate(); err != nil {
		return d.Err(err.Error())
	}
	return nil
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
	mod, err := caddyfile.UnmarshalModule(d, "http.device_flow.storage."+name)
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
			c.Name, err = singleArg(d)
		case "secret":
			if c.Secret, err = singleArg(d); err == nil {
				err = lineErr(d, checkClientSecret(id, c.Secret, c.Secret))
			}
		case "scopes":
			if c.Scopes = d.RemainingArgs(); len(c.Scopes) == 0 {
				err = d.ArgErr()
			}
		case "authorize_param":
			err = authorizeParamArg(d, &c.AuthorizeParams)
		case "issue_from":
			err = issueFromArgs(d, &c.IssueFrom)
		case "proximity":
			c.Proximity, err = oneOf(d, "off", "warn", "require")
		case "proximity_prefix":
			c.ProximityPrefix, err = proximityPrefixArg(d)
		default:
			return unrecognized(d, "client", clientSubdirectives)
		}
		if err != nil {
			return err
		}
	}
	h.Clients[id] = c
	return nil
}

// authorizeParamArg reads `authorize_param <name> <value>` into params. A
// repeated name adds a value: RFC 8707 allows several resource parameters.
func authorizeParamArg(d *caddyfile.Dispenser, params *map[string][]string) error {
	args := d.RemainingArgs()
	if len(args) != 2 {
		return d.Err("authorize_param wants: authorize_param <name> <value>")
	}
	if d.NextBlock(d.Nesting()) {
		return d.Err("authorize_param takes no block")
	}
	if err := flow.CheckAuthorizeParam(args[0]); err != nil {
		return lineErr(d, err)
	}
	if *params == nil {
		*params = make(map[string][]string)
	}
	(*params)[args[0]] = append((*params)[args[0]], args[1])
	return nil
}

// The subdirectives the two switches above accept, for suggestions.
var (
	siteSubdirectives = []string{
		"name", "authorization_endpoint", "token_endpoint", "issuer", "base_url", "hsts", "token_auth",
		"upstream_timeout", "authorize_param", "expires_in", "interval", "user_code", "prefix",
		"templates", "server_secret", "storage", "client", "guess_limit", "guess_limit_total", "issue_limit",
		"refresh_limit", "max_live_codes", "limits", "issue_from", "code_networks", "geoip", "proximity", "proximity_prefix",
	}
	clientSubdirectives = []string{"name", "secret", "scopes", "authorize_param", "issue_from", "proximity", "proximity_prefix"}
)

// unrecognized is the error for an unknown subdirective; it names the
// closest known one, since most are typos.
func unrecognized(d *caddyfile.Dispenser, block string, known []string) error {
	msg := fmt.Sprintf("unrecognized %s subdirective %q", block, d.Val())
	if s := closest(d.Val(), known); s != "" {
		msg += "; did you mean " + s + "?"
	}
	return d.Err(msg)
}

// closest is the candidate nearest to word by edit distance, or "" when
// none is near enough to be a typo of it: at most one edit in a short
// word, two in a longer one. Case is ignored.
func closest(word string, candidates []string) string {
	word = strings.ToLower(word)
	limit := min(2, max(1, len(word)/3))
	best, bestDist := "", limit+1
	for _, c := range candidates {
		if dist := editDistance(word, c); dist < bestDist {
			best, bestDist = c, dist
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b: the fewest
// insertions, deletions and substitutions of runes that turn one into the
// other.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1) // distances from ra[:i-1] to each prefix of rb
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur := make([]int, len(rb)+1)
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(rb)]
}

// issueFromArgs reads `issue_from <cidr...>` into list, checking each
// network now; private_ranges stands for the private and loopback
// networks, as in trusted_proxies. Repeated lines add up.
func issueFromArgs(d *caddyfile.Dispenser, list *[]string) error {
	args := d.RemainingArgs()
	if len(args) == 0 {
		return d.Err("issue_from wants one or more networks: issue_from <cidr|address|private_ranges...>")
	}
	if d.NextBlock(d.Nesting()) {
		return d.Err("issue_from takes no block")
	}
	for _, a := range args {
		if a == "private_ranges" {
			*list = append(*list, caddyhttp.PrivateRangesCIDR()...)
			continue
		}
		if _, err := flow.ParseNetwork(a); err != nil {
			return d.Errf("issue_from: %v", err)
		}
		*list = append(*list, a)
	}
	return nil
}

// codeNetworksArg reads `code_networks <n>|off`; 0 and off turn the lock
// off.
func codeNetworksArg(d *caddyfile.Dispenser) (*int, error) {
	v, err := singleArg(d)
	if err != nil {
		return nil, err
	}
	if v == "off" {
		v = "0"
	}
	n, err := strconv.ParseUint(v, 10, 31) // whole numbers: 0, 1, 2...
	if err != nil {
		return nil, d.Errf("code_networks: %q is not a whole number or off", v)
	}
	networks := int(n)
	return &networks, nil
}

// hstsArg reads `hsts off` or `hsts <max-age> [include_subdomains] [preload]`.
func hstsArg(d *caddyfile.Dispenser) (*HSTSConfig, error) {
	args := d.RemainingArgs()
	if d.NextBlock(d.Nesting()) {
		return nil, d.Err("hsts takes no block")
	}
	if len(args) == 0 {
		return nil, d.Err("hsts wants: hsts <max-age>|off [include_subdomains] [preload]")
	}
	if args[0] == "off" {
		if len(args) > 1 {
			return nil, d.Err("hsts off takes nothing after it")
		}
		return &HSTSConfig{Off: true}, nil
	}
	maxAge, err := caddy.ParseDuration(args[0])
	if err != nil || maxAge <= 0 {
		return nil, d.Errf("hsts: %q is not a positive duration (like 365d) or off", args[0])
	}
	c := &HSTSConfig{MaxAge: caddy.Duration(maxAge)}
	for _, flag := range args[1:] {
		switch flag {
		case "include_subdomains":
			c.IncludeSubdomains = true
		case "preload":
			c.Preload = true
		default:
			return nil, d.Errf("hsts: unknown option %q; want include_subdomains or preload", flag)
		}
	}
	return c, lineErr(d, c.validate())
}

// rateLimitArg reads `<n> per <duration>`.
func rateLimitArg(d *caddyfile.Dispenser) (*RateLimit, error) {
	name := d.Val()
	args := d.RemainingArgs()
	if len(args) != 3 || args[1] != "per" {
		return nil, d.Errf("%s wants: %s <n> per <duration>", name, name)
	}
	n, err := strconv.Atoi(args[0])
	if err != nil {
		return nil, d.Errf("%s: %q is not a positive whole number", name, args[0])
	}
	dur, err := caddy.ParseDuration(args[2])
	if err != nil {
		return nil, d.Errf("%s: %q is not a positive duration", name, args[2])
	}
	return &RateLimit{Count: n, Per: caddy.Duration(dur)}, lineErr(d, flow.CheckRate(name, n, dur))
}

// proximityPrefixArg reads `proximity_prefix <IPv4 bits> <IPv6 bits>`.
func proximityPrefixArg(d *caddyfile.Dispenser) (*ProximityPrefix, error) {
	args := d.RemainingArgs()
	if len(args) != 2 {
		return nil, d.Err("proximity_prefix wants: proximity_prefix <IPv4 bits> <IPv6 bits>, e.g. 24 56")
	}
	v4, err4 := strconv.Atoi(args[0])
	v6, err6 := strconv.Atoi(args[1])
	if err4 != nil || err6 != nil {
		return nil, d.Errf("proximity_prefix wants two whole numbers of bits, not %q and %q", args[0], args[1])
	}
	if d.NextBlock(d.Nesting()) {
		return nil, d.Err("proximity_prefix takes no block")
	}
	p := &ProximityPrefix{IPv4: v4, IPv6: v6}
	_, err := p.flow()
	return p, lineErr(d, err)
}

// lineErr is err, a rule's verdict, as an error at the dispenser's line;
// nil when err is.
func lineErr(d *caddyfile.Dispenser, err error) error {
	if err == nil {
		return nil
	}
	return d.Err(err.Error())
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

// flagArg reads a subdirective that takes no arguments: true, or an error.
func flagArg(d *caddyfile.Dispenser) (bool, error) {
	name := d.Val()
	if d.NextArg() {
		return false, d.Errf("%s takes no arguments", name)
	}
	return true, nil
}

// urlArg reads a URL and checks it with check.
func urlArg(d *caddyfile.Dispenser, check func(string) error) (string, error) {
	name := d.Val()
	v, err := singleArg(d)
	if err != nil {
		return "", err
	}
	// A placeholder ({env.IDP_URL}) is resolved at run time; check the rest now.
	if !strings.Contains(v, "{") {
		if err := check(v); err != nil {
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

var _ caddyfile.Unmarshaler = (*Handler)(nil)
