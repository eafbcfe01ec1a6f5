package flow_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
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

	page, err := h.svc.Codes(ctx, "", 100)
	list := page.Codes
	if err != nil || len(list) != 2 || page.Next != "" || !slices.ContainsFunc(list, isCode(early)) || !slices.ContainsFunc(list, isCode(late)) {
		t.Fatalf("Codes = %+v, %v; want both on one page", page, err)
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
	if page, err = h.svc.Codes(ctx, "", 100); err != nil || len(page.Codes) != 1 || page.Codes[0].UserCode != late["user_code"] {
		t.Fatalf("Codes after the first expired = %+v, %v", page, err)
	}
	if live, unreadable, err := h.svc.CountCodes(ctx); err != nil || live != 1 || unreadable != 0 {
		t.Fatalf("CountCodes after the first expired = %d, %d, %v; want 1 live", live, unreadable, err)
	}
	for _, code := range []string{early["user_code"].(string), "BCDF-GHJK", "not a code"} {
		if _, err := h.svc.DenyCode(ctx, code); !errors.Is(err, flow.ErrNotFound) {
			t.Errorf("DenyCode(%q) = %v, want ErrNotFound", code, err)
		}
	}
}

func isCode(issued map[string]any) func(flow.CodeInfo) bool {
	return func(c flow.CodeInfo) bool { return c.UserCode == issued["user_code"] }
}

// The listing a page at a time: every live code once across the pages,
// none on two, and the count of every page's.
func TestOperatorCodesPaged(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := context.Background()
	want := map[string]bool{}
	for i := range 7 {
		want[h.newCode(fmt.Sprintf("192.0.2.%d", i+1), "tv")["user_code"].(string)] = true
	}
	got := map[string]bool{}
	pages := 0
	for cursor, first := "", true; first || cursor != ""; first = false {
		page, err := h.svc.Codes(ctx, cursor, 3)
		if err != nil || len(page.Codes) > 3 {
			t.Fatalf("page %d: %+v, %v; want at most 3 codes", pages, page, err)
		}
		for _, c := range page.Codes {
			if got[c.UserCode] || !want[c.UserCode] {
				t.Fatalf("page %d lists %s: twice, or not issued", pages, c.UserCode)
			}
			got[c.UserCode] = true
		}
		cursor, pages = page.Next, pages+1
	}
	if len(got) != len(want) || pages != 3 {
		t.Fatalf("%d pages listed %d codes; want 3 pages of the 7", pages, len(got))
	}
	if live, unreadable, err := h.svc.CountCodes(ctx); err != nil || live != 7 || unreadable != 0 {
		t.Fatalf("CountCodes = %d, %d, %v; want 7 live", live, unreadable, err)
	}
	if _, err := h.svc.Codes(ctx, "not base64!", 3); !errors.Is(err, flow.ErrBadCursor) {
		t.Fatalf("a cursor the store did not make: %v, want ErrBadCursor", err)
	}
}

// The guess limits as an operator sees them: the window's wrong guesses,
// in total and per address (IPv6 by /64, /56 and /48), which addresses
// are refused until the window ends (at guess_limit, or at the allowance
// once the total is spent), and a clean slate in the next window.
func TestOperatorGuessLimits(t *testing.T) {
	h := newHarness(t, harnessOptions{configure: withLimits(flow.Limits{GuessesPerIP: 4, GuessesTotal: 8})})
	ctx := context.Background()
	guesses := func(ips ...string) {
		t.Helper()
		for _, ip := range ips {
			if a := h.lookup(ip, "BCDF-GHJK"); a.status != http.StatusBadRequest {
				t.Fatalf("a wrong guess from %s: %d", ip, a.status)
			}
		}
	}
	guesses("192.0.2.7", "192.0.2.7", "192.0.2.7", "192.0.2.7", "192.0.2.8", "192.0.2.8", "192.0.2.8")
	g, err := h.svc.Guesses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []flow.AddressGuesses{{Address: "192.0.2.7", Guesses: 4, InForce: true}, {Address: "192.0.2.8", Guesses: 3}}
	if g.Total != 7 || g.TotalInForce || g.PerAddress != 4 || g.AllowancePastTotal != 3 || !slices.Equal(g.Addresses, want) || !g.WindowEnds.After(h.clock.Now()) {
		t.Fatalf("Guesses = %+v; want 7 in total and %+v", g, want)
	}
	// The total spent: 192.0.2.8 is held to the allowance it has used.
	guesses("2001:db8::1")
	if g, err = h.svc.Guesses(ctx); err != nil {
		t.Fatal(err)
	}
	want = []flow.AddressGuesses{
		{Address: "192.0.2.7", Guesses: 4, InForce: true}, {Address: "192.0.2.8", Guesses: 3, InForce: true},
		{Address: "2001:db8::/48", Guesses: 1}, {Address: "2001:db8::/56", Guesses: 1}, {Address: "2001:db8::/64", Guesses: 1},
	}
	if g.Total != 8 || !g.TotalInForce || !slices.Equal(g.Addresses, want) {
		t.Fatalf("Guesses past the total = %+v; want 8, spent, and %+v", g, want)
	}
	h.clock.Advance(flow.DefaultGuessWindow)
	if g, err = h.svc.Guesses(ctx); err != nil || g.Total != 0 || len(g.Addresses) != 0 {
		t.Fatalf("Guesses in the next window = %+v, %v; want none", g, err)
	}
}
