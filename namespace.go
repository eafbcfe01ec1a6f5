package deviceflow

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"
)

// namespace is what identifies this handler's records in the store (see
// Name). Provision calls it after placeholders are resolved.
func (h *Handler) namespace() string {
	if h.Name != "" {
		return "name " + h.Name
	}
	upstream := h.Issuer
	if upstream == "" {
		upstream = h.AuthorizationEndpoint + " " + h.TokenEndpoint
	}
	return strings.Join([]string{"upstream " + upstream, "base_url " + strings.TrimSuffix(h.BaseURL, "/"), "prefix " + h.Prefix}, "\n")
}

// derivedIdentities holds, per config (its HTTP app), the identities handlers derived
// without a name. Two handlers of one config that derive the same one
// would share their records without anyone having said so (two sites with
// the same upstream, no base_url and no prefix): that is a load error
// asking for names. Handlers given the same name share on purpose.
var derivedIdentities sync.Map // the config's *caddyhttp.App → *sync.Map of namespaces

// claimDerivedIdentity fails when another handler of the config loading
// under ctx derived the same identity.
func (h *Handler) claimDerivedIdentity(ctx caddy.Context) error {
	if h.Name != "" {
		return nil
	}
	config, err := ctx.App("http") // the same for every handler of one config
	if err != nil {
		return err
	}
	v, loaded := derivedIdentities.LoadOrStore(config, new(sync.Map))
	if !loaded {
		context.AfterFunc(ctx, func() { derivedIdentities.Delete(config) })
	}
	if _, taken := v.(*sync.Map).LoadOrStore(h.namespace(), struct{}{}); taken {
		return fmt.Errorf("two device_flow handlers of this config would share their codes: they have the same upstream, base_url (%q) and prefix (%q); give each its own `name` (or the same name, to share on purpose)", h.BaseURL, h.Prefix)
	}
	return nil
}
