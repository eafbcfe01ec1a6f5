package deviceflow

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// The handlers running in this process, for the admin API (admin_api.go).
// A handler registers at Provision and leaves at Cleanup. A reload
// provisions the new config before it cleans up the old, so for a while
// one handler ID has two registrations: the admin API uses the newest.
// Within one config, handlers of one ID have the same records (same name,
// same storage: claimAdminID), so either would list the same codes.

// adminEntry is one registered handler.
type adminEntry struct {
	id      string
	name    string // Handler.Name, "" when derived
	prefix  string
	baseURL string
	service *flow.Service
}

var adminRegistry struct {
	sync.Mutex
	byID map[string][]*adminEntry // oldest first
}

// adminID is how the admin API names a handler: its name, or for a
// handler without one, the first 8 bytes of the SHA-256 of its derived
// namespace in hex (as in the Redis keys).
func (h *Handler) adminID() string {
	if h.Name != "" {
		return h.Name
	}
	sum := sha256.Sum256([]byte(h.namespace()))
	return hex.EncodeToString(sum[:8])
}

// adminClaims holds, per config (its HTTP app), the handlers of that
// config by admin ID. Two handlers of one config may have one ID only
// when they have the same records, the same name on the same storage
// (one device flow answering on two sites): otherwise the admin API would
// list and deny the codes of one of them for both. A reload is another
// config, so it may move a name to another storage.
var adminClaims sync.Map // the config's *caddyhttp.App → *sync.Map of id → adminClaim

// adminClaim is what a handler's admin ID stands for in its config.
type adminClaim struct {
	records string // the namespace, and where the storage keeps it
	who     string // the handler, for an error
}

// claimAdminID fails when another handler of the config loading under
// ctx has the same admin ID but other records; storage is the handler's
// loaded storage module.
func (h *Handler) claimAdminID(ctx caddy.Context, storage any) error {
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
	v, loaded := adminClaims.LoadOrStore(config, new(sync.Map))
	if !loaded {
		context.AfterFunc(ctx, func() { adminClaims.Delete(config) })
	}
	id := h.adminID()
	claim := adminClaim{records: h.namespace() + "\n" + where, who: who}
	if other, taken := v.(*sync.Map).LoadOrStore(id, claim); taken && other.(adminClaim).records != claim.records {
		return fmt.Errorf("two device_flow handlers of this config have the admin ID %q but not the same codes: %s, and %s; the admin API (caddy device-flow) would reach only one of them: give them different names (handlers that share their codes on purpose have the same name and the same storage)",
			id, other.(adminClaim).who, who)
	}
	return nil
}

// upstreamName is the upstream as the handler names it.
func (h *Handler) upstreamName() string {
	if h.Issuer != "" {
		return h.Issuer
	}
	return h.AuthorizationEndpoint
}

// registerAdmin adds the provisioned handler to the registry; the
// returned function takes it out again.
func (h *Handler) registerAdmin() (unregister func()) {
	e := &adminEntry{id: h.adminID(), name: h.Name, prefix: h.Prefix, baseURL: h.BaseURL, service: h.service}
	adminRegistry.Lock()
	defer adminRegistry.Unlock()
	if adminRegistry.byID == nil {
		adminRegistry.byID = make(map[string][]*adminEntry)
	}
	adminRegistry.byID[e.id] = append(adminRegistry.byID[e.id], e)
	return func() {
		adminRegistry.Lock()
		defer adminRegistry.Unlock()
		rest := slices.DeleteFunc(adminRegistry.byID[e.id], func(o *adminEntry) bool { return o == e })
		if len(rest) == 0 {
			delete(adminRegistry.byID, e.id)
		} else {
			adminRegistry.byID[e.id] = rest
		}
	}
}

// adminHandler is the newest registration of the handler id; nil when
// none runs.
func adminHandler(id string) *adminEntry {
	adminRegistry.Lock()
	defer adminRegistry.Unlock()
	all := adminRegistry.byID[id]
	if len(all) == 0 {
		return nil
	}
	return all[len(all)-1]
}

// adminHandlers is the newest registration of every handler, by ID.
func adminHandlers() []*adminEntry {
	adminRegistry.Lock()
	defer adminRegistry.Unlock()
	out := make([]*adminEntry, 0, len(adminRegistry.byID))
	for _, all := range adminRegistry.byID {
		out = append(out, all[len(all)-1])
	}
	slices.SortFunc(out, func(a, b *adminEntry) int { return strings.Compare(a.id, b.id) })
	return out
}
