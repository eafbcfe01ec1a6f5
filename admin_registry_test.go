package deviceflow

import (
	"testing"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// A reload provisions the new handler before the old one cleans up: the
// admin API must go on finding the new one after the old one leaves, and
// nothing once both have.
func TestAdminRegistryAcrossReload(t *testing.T) {
	old := &Handler{Name: "reloaded", service: new(flow.Service)}
	unregisterOld := old.registerAdmin()
	renewed := &Handler{Name: "reloaded", service: new(flow.Service)}
	unregisterNew := renewed.registerAdmin()

	if e := adminHandler("reloaded"); e == nil || e.service != renewed.service {
		t.Fatalf("while both run: %+v, want the new handler", e)
	}
	unregisterOld()
	if e := adminHandler("reloaded"); e == nil || e.service != renewed.service {
		t.Fatalf("after the old one left: %+v, want the new handler", e)
	}
	unregisterNew()
	if e := adminHandler("reloaded"); e != nil {
		t.Fatalf("after both left: %+v, want none", e)
	}
	for _, e := range adminHandlers() {
		if e.id == "reloaded" {
			t.Fatalf("adminHandlers still lists %+v", e)
		}
	}
}

// A handler without a name is listed under a hash of its derived
// namespace, which names no upstream URL in the admin API's paths.
func TestAdminIDOfUnnamedHandler(t *testing.T) {
	h := &Handler{Issuer: "https://idp.example"}
	if id := h.adminID(); len(id) != 16 {
		t.Fatalf("adminID = %q, want 16 hex digits", id)
	}
	if id := (&Handler{Name: "tv"}).adminID(); id != "tv" {
		t.Fatalf("adminID of a named handler = %q, want its name", id)
	}
}
