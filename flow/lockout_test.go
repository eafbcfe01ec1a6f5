package flow_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// signInUpTo walks a person's browser b, at address ip, through the
// confirmation page and Approve to the upstream, and returns the callback
// the upstream sends it back to (not yet followed).
func (h *harness) signInUpTo(b *http.Client, ip, userCode string) (callback string) {
	h.t.Helper()
	confirm := h.do(b, ip, http.MethodGet, "/device?code="+url.QueryEscape(userCode), "", "")
	if !confirm.isPage("confirm") {
		h.t.Fatalf("confirmation page expected from %s, got %d:\n%s", ip, confirm.status, confirm.body)
	}
	b.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
		if req.URL.Path == "/auth/redirect" {
			callback = strings.TrimPrefix(req.URL.String(), h.srv.URL)
			return http.ErrUseLastResponse
		}
		return nil
	}
	defer func() { b.CheckRedirect = nil }()
	form := url.Values{"csrf": {formToken(h.t, confirm.body)}, "user_code": {userCode}, "action": {"approve"}}
	h.do(b, ip, http.MethodPost, "/device", "application/x-www-form-urlencoded", form.Encode())
	if callback == "" {
		h.t.Fatal("the upstream did not send the browser back")
	}
	return callback
}

// guessFrom sends n wrong codes from each address and counts the answers
// by status.
func (h *harness) guessFrom(ips []string, n int) map[int]int {
	h.t.Helper()
	answers := map[int]int{}
	for _, ip := range ips {
		for range n {
			answers[h.lookup(ip, wrongCode).status]++
		}
	}
	return answers
}

func addresses(format string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf(format, i)
	}
	return out
}

// The person of each case has a live code and is out at the upstream
// signing in when the attack starts. Whatever the attacker's hundred
// addresses do with the default limits, the person comes back and is
// signed in, and a second person typing a right code from an address that
// has not been guessing gets the confirmation page and the QR image.
func TestNoLockOutByAHundredAddresses(t *testing.T) {
	for _, tc := range []struct {
		name     string
		attack   []string
		answered int // wrong codes the attack gets answered "wrong code"
	}{
		// One /56's /64s: the /56 holds them to 4 × guess_limit.
		{"100 /64s of one /56", addresses("2001:db8:0:%x::1", 100), 4 * flow.DefaultGuessesPerIP},
		// 100 IPv4 addresses spend guess_limit_total (20 each).
		{"100 IPv4 addresses", addresses("203.0.113.%d", 100), flow.DefaultGuessesTotal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{upstream: true})
			first := h.newCode("198.51.100.1", h.up.ClientID)["user_code"].(string)
			second := h.newCode("198.51.100.2", h.up.ClientID)["user_code"].(string)
			b := personBrowser()
			callback := h.signInUpTo(b, "192.0.2.1", first)

			got := h.guessFrom(tc.attack, flow.DefaultGuessesPerIP)
			if got[http.StatusBadRequest] != tc.answered {
				t.Fatalf("the attack's %d wrong codes: %v; want %d answered 400", len(tc.attack)*flow.DefaultGuessesPerIP, got, tc.answered)
			}
			// Coming back from the upstream, past any limit.
			if a := h.do(b, "192.0.2.1", http.MethodGet, callback, "", ""); !a.isPage("success") {
				t.Fatalf("the person coming back from the upstream: %d\n%s", a.status, a.body)
			}
			// A second person, who mistyped twice first.
			for range 2 {
				if a := h.lookup("192.0.2.2", wrongCode); a.status != http.StatusBadRequest {
					t.Fatalf("the second person's typo: %d", a.status)
				}
			}
			if a := h.qr("192.0.2.2", "", second, "svg"); a.status != http.StatusOK {
				t.Fatalf("the QR image of a right code: %d %s", a.status, a.body)
			}
			h.signInUpTo(personBrowser(), "192.0.2.2", second)
			// The attack's own addresses stay refused.
			if a := h.lookup(tc.attack[0], second); a.status != http.StatusTooManyRequests {
				t.Fatalf("a right code from an attacking address: %d", a.status)
			}
		})
	}
}

// A sign-in's callback is never refused by the guess limits: its state
// proves it, so even the address it comes back to having guessed past
// every limit (a NAT shared with an attacker) does not keep it out.
func TestCallbackOfASignInIsNeverGuessLimited(t *testing.T) {
	h := newHarness(t, harnessOptions{upstream: true, configure: func(c *flow.Config) { c.Limits.GuessesPerIP = 3 }})
	code := h.newCode("198.51.100.1", h.up.ClientID)["user_code"].(string)
	b := personBrowser()
	callback := h.signInUpTo(b, "192.0.2.1", code)
	if got := h.guessFrom([]string{"192.0.2.1"}, 5); got[http.StatusTooManyRequests] != 2 {
		t.Fatalf("guessing from the person's address: %v, want the last 2 refused", got)
	}
	if a := h.do(b, "192.0.2.1", http.MethodGet, callback, "", ""); !a.isPage("success") {
		t.Fatalf("the callback from an address past its guess limit: %d\n%s", a.status, a.body)
	}
	// A state no sign-in holds is still a guess, refused from there.
	if a := h.do(personBrowser(), "192.0.2.1", http.MethodGet, "/auth/redirect?code=x&state=BCDFGHJK.forged", "", ""); a.status != http.StatusTooManyRequests {
		t.Fatalf("a forged callback from that address: %d", a.status)
	}
}

// Past guess_limit_total, an address is held to 3 wrong codes (IPv6 /56s
// and /48s to 12 and 48); sources that have guessed more are refused, a
// right code from any other passes; the window's end lifts it all.
func TestGuessLimitTotalSpent(t *testing.T) {
	h := newHarness(t, harnessOptions{configure: withLimits(flow.Limits{GuessesTotal: 30})})
	code := h.newCode("198.51.100.1", "tv")["user_code"].(string)
	if got := h.guessFrom([]string{"203.0.113.1", "203.0.113.2"}, 15); got[http.StatusBadRequest] != 30 {
		t.Fatalf("spending the total: %v", got)
	}
	for _, tc := range []struct {
		name     string
		ips      []string
		answered int // wrong codes answered 400 before 429
	}{
		{"an address that spent the total", []string{"203.0.113.1"}, 0},
		{"a fresh IPv4 address", []string{"192.0.2.9"}, 3},
		{"a fresh /64", []string{"2001:db8:1:1::1"}, 3},
		{"8 /64s of one /56", addresses("2001:db8:2:%x::1", 8), 12},
		{"32 /56s of one /48", addresses("2001:db8:3:%x00::1", 32), 48},
	} {
		if got := h.guessFrom(tc.ips, 5); got[http.StatusBadRequest] != tc.answered {
			t.Errorf("%s: %v; want %d answered 400, the rest 429", tc.name, got, tc.answered)
		}
	}
	if a := h.lookup("192.0.2.9", code); a.status != http.StatusTooManyRequests || a.header.Get("Retry-After") == "" {
		t.Errorf("a right code from an address past the allowance: %d Retry-After=%q", a.status, a.header.Get("Retry-After"))
	}
	if a := h.lookup("192.0.2.10", code); !a.isPage("confirm") {
		t.Errorf("a right code from a fresh address: %d", a.status)
	}
	h.clock.Advance(flow.DefaultGuessWindow)
	code = h.newCode("198.51.100.1", "tv")["user_code"].(string)
	if a := h.lookup("203.0.113.1", code); !a.isPage("confirm") {
		t.Errorf("the next window, from an address that spent the total: %d", a.status)
	}
}
