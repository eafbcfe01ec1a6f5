package flow_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// wrongCode is a well-formed base-20 code that no test ever issues (the
// chance a drawn code equals it is 1 in 20^8 per code).
const wrongCode = "BBBB-BBBB"

func withLimits(l flow.Limits) func(*flow.Config) {
	return func(c *flow.Config) { c.Limits = l }
}

// Wrong guesses fired all at once must not get more answers than the
// limit allows: each guess is counted before its answer is given, so
// concurrent guesses cannot all slip past one check (RFC 8628 §5.1).
func TestGuessLimitHoldsUnderConcurrency(t *testing.T) {
	const limit, guesses = 5, 60
	h := newHarness(t, harnessOptions{configure: withLimits(flow.Limits{GuessesPerIP: limit})})
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		answered = map[int]int{}
	)
	start := make(chan struct{})
	for i := range guesses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			code := wrongCode
			if i%2 == 0 {
				code = fmt.Sprintf("BBBB-%04d", i) // malformed: digits are not base-20
			}
			a := h.lookup("192.0.2.7", code)
			mu.Lock()
			answered[a.status]++
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	if answered[http.StatusBadRequest] > limit {
		t.Fatalf("%d wrong guesses were answered \"invalid code\", the limit is %d (answers: %v)",
			answered[http.StatusBadRequest], limit, answered)
	}
	if answered[http.StatusBadRequest]+answered[http.StatusTooManyRequests] != guesses {
		t.Fatalf("every guess must be answered 400 or 429: %v", answered)
	}
}

// The limit also holds for the right code: past it, a lucky guess learns
// nothing.
func TestGuessLimitHoldsForTheRightCode(t *testing.T) {
	h := newHarness(t, harnessOptions{configure: withLimits(flow.Limits{GuessesPerIP: 3})})
	code := h.newCode("198.51.100.1", "tv")["user_code"].(string)
	if a := h.lookup("192.0.2.1", code); !a.isPage("confirm") {
		t.Fatalf("the right code, before any wrong one: %d", a.status)
	}
	for range 3 {
		if a := h.lookup("192.0.2.1", wrongCode); a.status != http.StatusBadRequest {
			t.Fatalf("wrong code within the limit: %d", a.status)
		}
	}
	a := h.lookup("192.0.2.1", code)
	if a.status != http.StatusTooManyRequests || !a.isPage("toomany") || a.header.Get("Retry-After") == "" {
		t.Fatalf("the right code past the limit: %d Retry-After=%q\n%s", a.status, a.header.Get("Retry-After"), a.body)
	}
	// Another address is not held back by this one.
	if a := h.lookup("192.0.2.2", code); !a.isPage("confirm") {
		t.Fatalf("another address: %d", a.status)
	}
}

// An IPv6 host has a /64 to pick addresses from; counting each address on
// its own would give it 2^64 times the limit. IPv4 addresses count alone.
func TestGuessLimitCountsIPv6By64(t *testing.T) {
	h := newHarness(t, harnessOptions{configure: withLimits(flow.Limits{GuessesPerIP: 3})})
	for i, ip := range []string{"2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3"} {
		if a := h.lookup(ip, wrongCode); a.status != http.StatusBadRequest {
			t.Fatalf("guess %d: %d", i, a.status)
		}
	}
	if a := h.lookup("2001:db8:1:2:abcd::9", wrongCode); a.status != http.StatusTooManyRequests {
		t.Fatalf("a fourth address of the same /64: %d, want 429", a.status)
	}
	if a := h.lookup("2001:db8:1:3::1", wrongCode); a.status != http.StatusBadRequest {
		t.Fatalf("another /64: %d, want 400", a.status)
	}
	for i, ip := range []string{"192.0.2.10", "192.0.2.11", "192.0.2.12", "::ffff:192.0.2.13"} {
		if a := h.lookup(ip, wrongCode); a.status != http.StatusBadRequest {
			t.Fatalf("IPv4 address %d (%s) must count on its own: %d", i, ip, a.status)
		}
	}
}

// The total limit counts every address; past it, each address is held to
// 3 wrong codes. The window's end lifts both.
func TestGuessLimitTotalAndWindow(t *testing.T) {
	h := newHarness(t, harnessOptions{configure: withLimits(flow.Limits{GuessesPerIP: 100, GuessesTotal: 4, GuessWindow: time.Minute})})
	for i := range 4 {
		if a := h.lookup(fmt.Sprintf("203.0.113.%d", i), wrongCode); a.status != http.StatusBadRequest {
			t.Fatalf("guess %d: %d", i, a.status)
		}
	}
	for i := range 3 {
		if a := h.lookup("203.0.113.200", wrongCode); a.status != http.StatusBadRequest {
			t.Fatalf("past the total, wrong code %d from a fresh address: %d", i, a.status)
		}
	}
	a := h.lookup("203.0.113.200", wrongCode)
	if a.status != http.StatusTooManyRequests {
		t.Fatalf("past the total, a fourth wrong code from one address: %d", a.status)
	}
	retry, err := strconv.Atoi(a.header.Get("Retry-After"))
	if err != nil || retry < 1 || retry > 60 {
		t.Fatalf("Retry-After %q must be 1..60 seconds", a.header.Get("Retry-After"))
	}
	h.clock.Advance(time.Duration(retry)*time.Second - time.Second)
	if a := h.lookup("203.0.113.200", wrongCode); a.status != http.StatusTooManyRequests {
		t.Fatalf("a second before Retry-After: %d", a.status)
	}
	h.clock.Advance(time.Second)
	if a := h.lookup("203.0.113.200", wrongCode); a.status != http.StatusBadRequest {
		t.Fatalf("after Retry-After: %d", a.status)
	}
}

// Counters live in the store, so closing and opening it again (a restart)
// does not hand out a fresh allowance.
func TestGuessCountersSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	opts := harnessOptions{dir: dir, configure: withLimits(flow.Limits{GuessesPerIP: 2})}
	first := newHarness(t, opts)
	for range 2 {
		first.lookup("192.0.2.50", wrongCode)
	}
	first.stop()
	opts.clock = first.clock
	second := newHarness(t, opts)
	if a := second.lookup("192.0.2.50", wrongCode); a.status != http.StatusTooManyRequests {
		t.Fatalf("after a restart: %d, want 429", a.status)
	}
}

// Off switches every limit off.
func TestLimitsOff(t *testing.T) {
	h := newHarness(t, harnessOptions{configure: withLimits(flow.Limits{Off: true, GuessesPerIP: 1, GuessesTotal: 1, IssuePerIP: 1, LiveCodes: 1})})
	for i := range 5 {
		if a := h.lookup("192.0.2.1", wrongCode); a.status != http.StatusBadRequest {
			t.Fatalf("guess %d with limits off: %d", i, a.status)
		}
		if a := h.post("192.0.2.1", "/device/code", url.Values{"client_id": {"tv"}}); a.status != http.StatusOK {
			t.Fatalf("code %d with limits off: %d %s", i, a.status, a.body)
		}
	}
}

// Device codes: per address per window, and a cap on codes alive at once.
// A client past its own rate hears 429 slow_down; the server past its cap
// (here past its ceiling too: half the cap, 2, were asked within the
// allowance) is a server-side condition, so every client hears 503
// temporarily_unavailable. Both say when to come back.
func TestIssueLimits(t *testing.T) {
	h := newHarness(t, harnessOptions{configure: withLimits(flow.Limits{IssuePerIP: 3, IssueWindow: time.Minute, LiveCodes: 5})})
	ask := func(ip string) answer { return h.post(ip, "/device/code", url.Values{"client_id": {"tv"}}) }
	for i := range 3 {
		if a := ask("192.0.2.1"); a.status != http.StatusOK {
			t.Fatalf("code %d: %d %s", i, a.status, a.body)
		}
	}
	a := ask("192.0.2.1")
	if a.status != http.StatusTooManyRequests || a.json(t)["error"] != "slow_down" || a.header.Get("Retry-After") == "" {
		t.Fatalf("past the per-address rate: %d %s Retry-After=%q", a.status, a.body, a.header.Get("Retry-After"))
	}
	for i := range 2 {
		if a := ask(fmt.Sprintf("192.0.2.%d", 10+i)); a.status != http.StatusOK {
			t.Fatalf("another address %d: %d %s", i, a.status, a.body)
		}
	}
	a = ask("192.0.2.20")
	if a.status != http.StatusServiceUnavailable || a.json(t)["error"] != "temporarily_unavailable" || a.header.Get("Retry-After") == "" {
		t.Fatalf("past the live-code cap: %d %s Retry-After=%q", a.status, a.body, a.header.Get("Retry-After"))
	}
	// The live codes have all expired two lifetimes on.
	h.clock.Advance(2 * flow.DefaultExpiresIn)
	if a := ask("192.0.2.20"); a.status != http.StatusOK {
		t.Fatalf("after the codes expired: %d %s", a.status, a.body)
	}
}

// The QR endpoint draws only live codes, so it must not be a way around
// the guess limits: its lookups count with the page's.
func TestQRLookupsCountAsGuesses(t *testing.T) {
	h := newHarness(t, harnessOptions{configure: withLimits(flow.Limits{GuessesPerIP: 3})})
	code := h.newCode("198.51.100.1", "tv")["user_code"].(string)
	qr := func(userCode string) answer {
		return h.do(http.DefaultClient, "192.0.2.1", http.MethodGet, "/device/qr?user_code="+url.QueryEscape(userCode), "", "")
	}
	if a := qr(code); a.status != http.StatusOK || a.header.Get("Content-Type") != "image/svg+xml" {
		t.Fatalf("QR of a live code: %d %s", a.status, a.body)
	}
	for range 2 {
		if a := qr(wrongCode); a.status != http.StatusNotFound || a.json(t)["error"] != "invalid_request" {
			t.Fatalf("QR of an unknown code: %d %s", a.status, a.body)
		}
	}
	if a := h.lookup("192.0.2.1", wrongCode); a.status != http.StatusBadRequest { // the third wrong guess
		t.Fatalf("page, third wrong code: %d", a.status)
	}
	if a := qr(code); a.status != http.StatusTooManyRequests || a.header.Get("Retry-After") == "" {
		t.Fatalf("QR of the live code past the limit: %d %s", a.status, a.body)
	}
	if a := h.lookup("192.0.2.1", code); a.status != http.StatusTooManyRequests {
		t.Fatalf("page past the limit: %d", a.status)
	}
}

// Refused requests are counted by the metrics, not written one line each:
// a flood past a limit logs its first refusal, then a line per interval.
func TestRefusalsDoNotFloodTheLog(t *testing.T) {
	h := newHarness(t, harnessOptions{configure: withLimits(flow.Limits{GuessesPerIP: 3})})
	for range 200 {
		h.lookup("192.0.2.1", wrongCode)
	}
	if n := h.logs.FilterMessage("user code guesses limited").Len(); n != 1 {
		t.Fatalf("197 refused guesses logged %d lines, want 1", n)
	}
}

// A callback finds its login by the user code its state names, so states
// nobody issued are guesses at sign-ins in progress: they count against
// the same limits as wrong user codes.
func TestForgedCallbacksCountAsGuesses(t *testing.T) {
	h := newHarness(t, harnessOptions{configure: withLimits(flow.Limits{GuessesPerIP: 3})})
	callback := func(state string) answer {
		return h.do(http.DefaultClient, "192.0.2.7", http.MethodGet, "/auth/redirect?code=x&state="+url.QueryEscape(state), "", "")
	}
	for i := range 3 {
		if a := callback("BCDFGHJK.forged"); a.status != http.StatusBadRequest {
			t.Fatalf("forged callback %d: %d", i, a.status)
		}
	}
	if a := callback("BCDFGHJK.forged"); a.status != http.StatusTooManyRequests || a.header.Get("Retry-After") == "" {
		t.Fatalf("forged callback past the limit: %d", a.status)
	}
	if a := h.lookup("192.0.2.7", wrongCode); a.status != http.StatusTooManyRequests {
		t.Fatalf("a user code from the same address: %d, want 429", a.status)
	}
}

// shortTally answers every Tally with fewer values than steps, as a broken
// store might.
type shortTally struct{ flow.Store }

func (shortTally) Tally(context.Context, ...flow.Tally) ([]int64, error) { return nil, nil }

// A store that answers a Tally with too few values makes the requests
// that count answer 503, never panic.
func TestShortTallyIsUnavailable(t *testing.T) {
	h := newHarness(t, harnessOptions{configure: func(c *flow.Config) { c.Store = shortTally{c.Store} }})
	for _, tc := range []struct {
		name string
		a    answer
	}{
		{"issue", h.post("192.0.2.1", "/device/code", url.Values{"client_id": {"tv"}})},
		{"lookup", h.lookup("192.0.2.1", "BCDF-GHJK")},
	} {
		if tc.a.status != http.StatusServiceUnavailable || tc.a.header.Get("Retry-After") == "" {
			t.Errorf("%s: %d %s; want 503 with Retry-After", tc.name, tc.a.status, tc.a.body)
		}
	}
}
