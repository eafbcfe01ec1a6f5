package flow_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// The operator's view: live codes only, and denying a code, pending or
// denied already, by its user code as typed; an expired or unknown code
// is not found.
func TestOperatorCodesAndDeny(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := context.Background()
	early := h.newCode("192.0.2.1", "tv")
	h.clock.Advance(5 * time.Minute)
	late := h.newCode("192.0.2.1", "tv")

	list, err := h.svc.Codes(ctx)
	if err != nil || len(list) != 2 || list[0].UserCode != early["user_code"] || list[1].UserCode != late["user_code"] {
		t.Fatalf("Codes = %+v, %v; want both, oldest first", list, err)
	}
	if list[0].Status != "pending" || list[0].Polled {
		t.Fatalf("a fresh code: %+v", list[0])
	}

	info, err := h.svc.DenyCode(ctx, " "+late["user_code"].(string)+" ")
	if err != nil || info.Status != "denied" {
		t.Fatalf("DenyCode = %+v, %v", info, err)
	}
	if info, err = h.svc.DenyCode(ctx, late["user_code"].(string)); err != nil || info.Status != "denied" {
		t.Fatalf("DenyCode of a denied code = %+v, %v; want it unchanged", info, err)
	}
	if status, out := h.poll(late["device_code"].(string), "tv"); status != http.StatusBadRequest || out["error"] != "access_denied" || out["error_description"] != flow.OperatorReason {
		t.Fatalf("poll of the denied code: %d %v", status, out)
	}

	// The early code expires: it is no longer listed, nor deniable.
	h.clock.Advance(6 * time.Minute)
	if list, err = h.svc.Codes(ctx); err != nil || len(list) != 1 || list[0].UserCode != late["user_code"] {
		t.Fatalf("Codes after the first expired = %+v, %v", list, err)
	}
	for _, code := range []string{early["user_code"].(string), "BCDF-GHJK", "not a code"} {
		if _, err := h.svc.DenyCode(ctx, code); !errors.Is(err, flow.ErrNotFound) {
			t.Errorf("DenyCode(%q) = %v, want ErrNotFound", code, err)
		}
	}
}
