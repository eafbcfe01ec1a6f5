package flow

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"go.uber.org/zap"
)

// Limits against guessing user codes (RFC 8628 §5.1) and against filling
// the store. Zero fields take the defaults; Off turns every limit off (for
// load tests).
type Limits struct {
	// Wrong user codes tolerated per client IP (IPv6: per /64, and 4 and
	// 16 times as many per /56 and /48), per window. Past GuessesTotal
	// wrong codes in a window from every address together, each address
	// is held to guessAllowance instead (see guess_limits.go).
	GuessesPerIP int
	GuessesTotal int
	GuessWindow  time.Duration
	// ApprovesPerIP: Approve presses per client IP (IPv6 as guesses) per
	// GuessWindow. Each one writes a login and starts an upstream sign-in.
	ApprovesPerIP int
	// Device codes issued per client IP per IssueWindow.
	IssuePerIP  int
	IssueWindow time.Duration
	// Refresh relays per client IP per RefreshWindow (IPv6 as guesses);
	// past refreshPerClientFactor times as many for one client_id from
	// every address, each address is held to refreshAllowance.
	RefreshPerIP  int
	RefreshWindow time.Duration
	// RefreshInFlight bounds the refresh relays waiting on the upstream
	// at once, so a slow upstream cannot pin a goroutine per request.
	RefreshInFlight int
	// QRPerIP: QR images drawn or served per client IP per minute (IPv6:
	// per /64, and 4 and 16 times as many per /56 and /48).
	QRPerIP int
	// LiveCodes caps the codes issued within one code lifetime across the
	// server, so a flood cannot grow the store without bound.
	LiveCodes int
	Off       bool
}

// Defaults, chosen so that guessing is hopeless (see docs/security.md:
// with 10,000 live base-20 codes, 2,000 guesses a window find one with
// probability 2,000 × 10,000 / 20^8 ≈ 0.08%) while a person who mistypes,
// or an office behind one NAT, is never stopped.
const (
	DefaultGuessesPerIP = 20
	DefaultGuessesTotal = 2000
	DefaultGuessWindow  = 15 * time.Minute
	DefaultApprovePerIP = 60
	DefaultIssuePerIP   = 600
	DefaultIssueWindow  = time.Minute
	DefaultLiveCodes    = 2_000_000
	// A device refreshes once per access-token lifetime (minutes to
	// hours); 60 a minute leaves room for many devices behind one NAT.
	DefaultRefreshPerIP    = 60
	DefaultRefreshWindow   = time.Minute
	DefaultRefreshInFlight = 64
	// A device shows one image per code; 60 a minute leaves room for a
	// NAT full of them.
	DefaultQRPerIP = 60
	qrWindow       = time.Minute
	// refreshPerClientFactor: a client_id's total is that of this many
	// addresses, as the guess total is to the per-address guesses.
	refreshPerClientFactor = 100
)

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&l.GuessesPerIP, DefaultGuessesPerIP)
	def(&l.GuessesTotal, DefaultGuessesTotal)
	def(&l.ApprovesPerIP, DefaultApprovePerIP)
	def(&l.IssuePerIP, DefaultIssuePerIP)
	def(&l.LiveCodes, DefaultLiveCodes)
	def(&l.RefreshPerIP, DefaultRefreshPerIP)
	def(&l.RefreshInFlight, DefaultRefreshInFlight)
	def(&l.QRPerIP, DefaultQRPerIP)
	if l.RefreshWindow == 0 {
		l.RefreshWindow = DefaultRefreshWindow
	}
	if l.GuessWindow == 0 {
		l.GuessWindow = DefaultGuessWindow
	}
	if l.IssueWindow == 0 {
		l.IssueWindow = DefaultIssueWindow
	}
	return l
}

// check refuses what no default fills in: a negative count or window,
// which would shut everyone out or never reset. The names are the
// Caddyfile's where there is one.
func (l Limits) check() error {
	var errs []error
	for _, r := range []struct {
		name  string
		count int
		per   time.Duration
	}{
		{"guess_limit", l.GuessesPerIP, l.GuessWindow},
		{"issue_limit", l.IssuePerIP, l.IssueWindow},
		{"refresh_limit", l.RefreshPerIP, l.RefreshWindow},
	} {
		errs = append(errs, CheckRate(r.name, r.count, r.per))
	}
	for _, c := range []struct {
		name  string
		count int
	}{
		{"guess_limit_total", l.GuessesTotal},
		{"max_live_codes", l.LiveCodes},
		{"Limits.ApprovesPerIP", l.ApprovesPerIP},
		{"Limits.RefreshInFlight", l.RefreshInFlight},
		{"Limits.QRPerIP", l.QRPerIP},
	} {
		if c.count < 1 {
			errs = append(errs, fmt.Errorf("%s must be positive, not %d", c.name, c.count))
		}
	}
	return errors.Join(errs...)
}

// CheckRate accepts a rate limit of a positive count per a positive
// window.
func CheckRate(name string, count int, per time.Duration) error {
	if count < 1 || per <= 0 {
		return fmt.Errorf("%s needs a positive count and window, not %d per %s", name, count, per)
	}
	return nil
}

// LiveCodeCap is the cap on live codes these limits set (max_live_codes
// or its default); 0 when the limits are off.
func (l Limits) LiveCodeCap() int {
	if l.Off {
		return 0
	}
	return l.withDefaults().LiveCodes
}

// tally is Store.Tally, with its answer checked: a value for every step
// up to the end or to a hit past its Limit, so that the callers may index
// them. A store that answers otherwise is failing (503), never a panic.
func (s *Service) tally(ctx context.Context, steps ...Tally) ([]int64, error) {
	n, err := s.cfg.Store.Tally(ctx, steps...)
	if err != nil {
		return nil, err
	}
	if len(n) == len(steps) && len(n) > 0 {
		return n, nil
	}
	if k := len(n) - 1; k >= 0 && k < len(steps) && steps[k].TTL > 0 && steps[k].Limit > 0 && n[k] > steps[k].Limit {
		return n, nil
	}
	return nil, fmt.Errorf("%w: the store answered %d counter values for %d steps", ErrUnavailable, len(n), len(steps))
}

// window names the fixed window that now falls in, and says when it ends.
func window(now time.Time, size time.Duration) (name string, ends time.Time) {
	n := now.UnixNano() / int64(size)
	return strconv.FormatInt(n, 36), time.Unix(0, (n+1)*int64(size))
}

// limitSubject is what a client's limits are counted against: its IPv4
// address, or the /64 of its IPv6 address (one host is routinely given a
// whole /64, so counting single addresses would multiply its allowance by
// 2^64).
func limitSubject(ip string) string {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	addr = addr.Unmap()
	if addr.Is4() {
		return addr.String()
	}
	p, _ := addr.WithZone("").Prefix(64)
	return p.String()
}

// subject is one prefix a request is counted against, with its allowance
// as a multiple of the per-address limit.
type subject struct {
	prefix string
	factor int
}

// Wider IPv6 prefixes counted besides the /64, with their allowances as
// multiples of the /64's: whoever holds a /48 has 65,536 /64s, and would
// otherwise get 65,536 allowances (docs/security.md, "Flooding" and
// "Guessing user codes").
var widerPrefixes = []struct{ bits, factor int }{{56, 4}, {48, 16}}

// subjects are what a request from ip counts against, narrowest first: an
// IPv4 address alone; an IPv6 client's /64, /56 and /48. Device code
// requests, wrong user codes and refresh relays count against all of them.
func subjects(ip string) []subject {
	addr, err := netip.ParseAddr(ip)
	if err != nil || addr.Unmap().Is4() {
		return []subject{{limitSubject(ip), 1}}
	}
	addr = addr.WithZone("")
	out := []subject{{limitSubject(ip), 1}}
	for _, w := range widerPrefixes {
		p, _ := addr.Prefix(w.bits)
		out = append(out, subject{p.String(), w.factor})
	}
	return out
}

// shareSteps are the Tally steps counting one request against each of
// subs in window w: a counter named kind + subject + ":" + w, kept ttl,
// whose share is perAddress times the subject's factor. Tally stops at
// the first over its share, so a subject over its own does not use up
// its wider prefixes'. extra is room for the caller's further steps.
func shareSteps(subs []subject, kind, w string, ttl time.Duration, perAddress, extra int) []Tally {
	steps := make([]Tally, 0, len(subs)+extra)
	for _, sub := range subs {
		steps = append(steps, Tally{Key: kind + sub.prefix + ":" + w, TTL: ttl, Limit: int64(perAddress * sub.factor)})
	}
	return steps
}

// subjectFactor is the allowance factor of a subject as subjects names it.
func subjectFactor(prefix string) int {
	if p, err := netip.ParsePrefix(prefix); err == nil {
		for _, w := range widerPrefixes {
			if p.Bits() == w.bits {
				return w.factor
			}
		}
	}
	return 1
}

// mayApprove counts one Approve against the client's allowance (IPv6: its
// /64, /56 and /48, as device codes: each Approve starts an upstream
// sign-in, and a /48 holds 65,536 /64s), and reports whether it was still
// within it.
func (s *Service) mayApprove(ctx context.Context, ip string) (ok bool, retryAfter time.Duration, err error) {
	l := s.cfg.Limits
	if l.Off {
		return true, 0, nil
	}
	retryAfter, err = s.countShares(ctx, ip, "a:ip:", l.GuessWindow, l.ApprovesPerIP)
	return err == nil && retryAfter == 0, retryAfter, err
}

// mayDrawQR counts one QR image request against the client's allowance
// (IPv6: its /64, /56 and /48, as device codes: a /48 holds 65,536 /64s,
// and drawing is what costs); a refusal is 429 with Retry-After.
func (s *Service) mayDrawQR(ctx context.Context, ip string) (refusal *oauthError, err error) {
	if s.cfg.Limits.Off {
		return nil, nil
	}
	retryAfter, err := s.countShares(ctx, ip, "q:ip:", qrWindow, s.cfg.Limits.QRPerIP)
	if err != nil || retryAfter == 0 {
		return nil, err
	}
	return &oauthError{status: http.StatusTooManyRequests, Code: ErrSlowDown,
		Description: "too many QR images requested from this address; try again later", retryAfter: retryAfter}, nil
}

// countShares counts one request of kind against each of ip's subjects in
// the current window of length per (each allowed perAddress times its
// factor), and says how long until the window ends if one is over its
// share; 0 while all are within.
func (s *Service) countShares(ctx context.Context, ip, kind string, per time.Duration, perAddress int) (retryAfter time.Duration, err error) {
	now := s.cfg.Now()
	w, ends := window(now, per)
	subs := subjects(ip)
	steps := shareSteps(subs, kind, w, per+time.Minute, perAddress, 0)
	n, err := s.tally(ctx, steps...)
	if err != nil {
		return 0, err
	}
	if len(n) < len(subs) || n[len(n)-1] > steps[len(n)-1].Limit {
		return ends.Sub(now), nil
	}
	return 0, nil
}

// mayIssue counts one device code request and checks it against the
// per-IP rate and the cap on live codes. A refusal is the answer to give:
// a client over its own rate hears 429 slow_down; the server at its cap is
// not that client's doing, so it hears 503 temporarily_unavailable, as
// when the store is down. Both carry Retry-After.
func (s *Service) mayIssue(ctx context.Context, ip string) (refusal *oauthError, err error) {
	l := s.cfg.Limits
	if l.Off {
		return nil, nil
	}
	now := s.cfg.Now()
	// One call counts the request against each of the address's subjects
	// in turn, stopping at the first over its allowance (so that one /64
	// over its own cannot use up its /56's), then against the codes
	// issued in this code lifetime, reading the lifetime before (codes
	// live at most ExpiresIn, so the live ones were all issued in these
	// two windows), and then the same for the few codes of
	// liveCodeAllowance (live_codes.go).
	w, ends := window(now, l.IssueWindow)
	lw, lends := window(now, s.cfg.ExpiresIn)
	prev, _ := window(now.Add(-s.cfg.ExpiresIn), s.cfg.ExpiresIn)
	subs := subjects(ip)
	steps := shareSteps(subs, "i:ip:", w, l.IssueWindow+time.Minute, l.IssuePerIP, 2+len(subs)+2)
	steps = append(steps, Hit("i:all:"+lw, 2*s.cfg.ExpiresIn+time.Minute), Read("i:all:"+prev))
	steps = append(steps, s.fewCodeSteps(subs, w, lw, prev)...)
	n, err := s.tally(ctx, steps...)
	if err != nil {
		return nil, err
	}
	if over := len(n) - 1; len(n) <= len(subs) {
		sub := subs[over]
		s.warnings.warn(s.log, "device code requests limited: this address is over issue_limit",
			zap.String("client_ip", ip), zap.String("counted_as", sub.prefix),
			zap.Int("issue_limit", l.IssuePerIP*sub.factor), zap.Duration("per", l.IssueWindow))
		return &oauthError{status: http.StatusTooManyRequests, Code: ErrSlowDown,
			Description: "too many device codes requested from this address; try again later", retryAfter: ends.Sub(now)}, nil
	}
	if live := n[len(subs)] + n[len(subs)+1]; live <= int64(l.LiveCodes) {
		return nil, nil
	}
	few := n[len(subs)+2:]
	if len(few) < len(subs)+2 {
		s.warnings.warn(s.log, "device code requests limited: the server holds max_live_codes live codes, and this address has had its live_code_allowance",
			zap.String("client_ip", ip), zap.Int("max_live_codes", l.LiveCodes), zap.Int("live_code_allowance", l.liveCodeAllowanceOf()))
		return &oauthError{status: http.StatusServiceUnavailable, Code: ErrTemporarilyUnavail,
			Description: "the service is issuing too many codes right now; try again later", retryAfter: ends.Sub(now)}, nil
	}
	if fewLive := few[0] + few[len(few)-1]; fewLive > int64(liveCodeHeadroom(l.LiveCodes)) {
		s.warnings.warn(s.log, "device code requests refused: the server holds 1.5 × max_live_codes live codes; raise max_live_codes if this is real demand",
			zap.String("client_ip", ip), zap.Int("max_live_codes", l.LiveCodes), zap.Int("live_code_ceiling", LiveCodeCeiling(l.LiveCodes)))
		return &oauthError{status: http.StatusServiceUnavailable, Code: ErrTemporarilyUnavail,
			Description: "the service is issuing too many codes right now; try again later", retryAfter: lends.Sub(now)}, nil
	}
	return nil, nil
}
