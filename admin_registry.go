package deviceflow

import (
	"slices"
	"strings"
	"sync"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// The handlers running in this process, for the admin API (admin_api.go).
// A handler registers at Provision and leaves at Cleanup. A reload
// provisions the new config before it cleans up the old, so for a while
// one handler ID has two registrations: the admin API uses the newest.
// Within one config, handlers of one ID have the same records (same name,
// same storage: claimIdentity), so either would list the same codes.

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
