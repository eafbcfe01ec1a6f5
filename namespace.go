package deviceflow

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// A handler's identity: its namespace (what its records are under in the
// store), and its ID, how the admin API and the audit log name it. Both
// come from Name, or without one from the settings that decide where
// people are sent; both are read after placeholders are resolved.

// namespace is what identifies this handler's records in the store (see
// Name).
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

// adminID is the handler's name, or for a handler without one its
// namespace's flow.NamespaceID in hex (as in the Redis keys), which names
// no upstream URL.
func (h *Handler) adminID() string {
	if h.Name != "" {
		return h.Name
	}
	id := flow.NamespaceID(h.namespace())
	return hex.EncodeToString(id[:])
}

// upstreamName is the upstream as the handler names it.
func (h *Handler) upstreamName() string {
	if h.Issuer != "" {
		return h.Issuer
	}
	return h.AuthorizationEndpoint
}

// identityClaims holds, per config (its HTTP app), the handlers of that
// config by ID. Two handlers of one config may have one ID only when they
// have the same records: the same name on the same storage (one device
// flow answering on two sites). Otherwise the admin API would list and
// deny the codes of one of them for both; and two handlers without a name
// that derive the same namespace (two sites with the same upstream, no
// base_url and no prefix) would share their records without anyone having
// said so. A reload is another config, so it may move a name to another
// storage.
var identityClaims sync.Map // the config's *caddyhttp.App → *sync.Map of id → identityClaim

// identityClaim is what a handler's ID stands for in its config.
type identityClaim struct {
	namespace string
	records   string // the namespace, and where the storage keeps it
	who       string // the handler, for an error
}

// claimIdentity fails when another handler of the config loading under
// ctx has the same ID but other records; storage is the handler's loaded
// storage module.
func (h *Handler) claimIdentity(ctx caddy.Context, storage any) error {
	config, err := ctx.App("http") // the same for every handler of one config
	if err != nil {
		return err
	}
	// Where the storage keeps its records: what storeIdentity says, or
	// for another storage module its settings (compared, never shown: they
	// may hold a secret).
	where, shown := string(h.StorageRaw), fmt.Sprintf("%T", storage)
	if s, ok := storage.(interface{ storeIdentity() string }); ok {
		where = s.storeIdentity()
		shown = where
	}
	who := fmt.Sprintf("the handler without a name in front of %s (base_url %q, prefix %q) on %s", h.upstreamName(), h.BaseURL, h.Prefix, shown)
	if h.Name != "" {
		who = fmt.Sprintf("the handler named %q on %s", h.Name, shown)
	}
	v, loaded := identityClaims.LoadOrStore(config, new(sync.Map))
	if !loaded {
		context.AfterFunc(ctx, func() { identityClaims.Delete(config) })
	}
	id := h.adminID()
	claim := identityClaim{namespace: h.namespace(), records: h.namespace() + "\n" + where, who: who}
	stored, taken := v.(*sync.Map).LoadOrStore(id, claim)
	other := stored.(identityClaim)
	switch {
	case !taken:
		return nil
	case h.Name == "" && other.namespace == claim.namespace:
		return fmt.Errorf("two device_flow handlers of this config would share their codes: they have the same upstream, base_url (%q) and prefix (%q); give each its own `name` (or the same name, to share on purpose)", h.BaseURL, h.Prefix)
	case other.records != claim.records:
		return fmt.Errorf("two device_flow handlers of this config have the admin ID %q but not the same codes: %s, and %s; the admin API (caddy device-flow) would reach only one of them: give them different names (handlers that share their codes on purpose have the same name and the same storage)",
			id, other.who, who)
	}
	return nil
}
