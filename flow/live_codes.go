package flow

import "time"

// Past max_live_codes the server does not refuse everyone, or a few dozen
// IPv6 /48s asking at issue_limit could keep every device out (a /48 may
// ask for 16 × issue_limit codes a window; docs/security.md, "Flooding"):
// an address (IPv6: its /64, and 4 and 16 times as many per /56 and /48)
// still gets liveCodeAllowance codes per issue window, and the flooding
// addresses, each past it, are refused. The codes asked within that
// allowance are counted apart, in the same two code lifetimes as every
// code; past liveCodeHeadroom of them everyone is refused, so the store
// holds at most LiveCodeCeiling codes: max_live_codes before the cap,
// and at most the headroom after it.
const liveCodeAllowance = 2

// liveCodeAllowanceOf is the codes per issue window an address still gets
// past max_live_codes: liveCodeAllowance, or issue_limit when lower.
func (l Limits) liveCodeAllowanceOf() int { return min(liveCodeAllowance, l.IssuePerIP) }

// liveCodeHeadroom is how many codes asked within the allowance, in two
// code lifetimes, are still issued past the cap: half of it. A flood
// holds an IPv4 address to 2 codes a minute (20 a 10-minute lifetime) and
// a /48 to 32 (320), so spending the headroom of the default cap, 1M,
// takes 50,000 IPv4 addresses or 3,125 /48s, where filling the cap takes
// 21 /48s; and the store's bound grows by half, not more.
func liveCodeHeadroom(liveCodes int) int { return liveCodes / 2 }

// LiveCodeCeiling is the most codes a handler with this max_live_codes
// holds: the cap, and the headroom past it. Disk and memory are sized
// for it (docs/operations.md, "Disk and memory").
func LiveCodeCeiling(liveCodes int) int { return liveCodes + liveCodeHeadroom(liveCodes) }

// fewCodeSteps are the Tally steps of the allowance, after mayIssue's: a
// read of the codes asked within it in the code lifetime before (lw and
// prev name the lifetimes), one hit per subject within its share of the
// allowance this issue window (w), and, when every subject was, a hit of
// this lifetime's count. A call that stops before the last step was past
// the allowance; the first and last values are the two lifetimes' counts.
func (s *Service) fewCodeSteps(subs []subject, w, lw, prev string) []Tally {
	l := s.cfg.Limits
	steps := append([]Tally{Read("i:few:all:" + prev)}, shareSteps(subs, "i:few:ip:", w, l.IssueWindow+time.Minute, l.liveCodeAllowanceOf(), 1)...)
	return append(steps, Hit("i:few:all:"+lw, 2*s.cfg.ExpiresIn+time.Minute))
}
