package flow

import (
	"context"
	"time"
)

// Wrong user codes are counted per address (IPv6 also per /56 and /48,
// see subjects) and in total, in fixed windows. The total does not refuse
// everyone once spent, or a hundred addresses could keep every person out:
// past it, a source is refused only when it has guessed wrong
// guessAllowance times (× its prefix's factor) in the window, so a person
// typing a right code from an address that has not been guessing still
// gets in, and an attacker gets few guesses from each further address.
const guessAllowance = 3

// guessAllowanceOf is the wrong codes per address tolerated once the
// total is spent: guessAllowance, or the per-address limit when that is
// lower.
func (l Limits) guessAllowanceOf() int { return min(guessAllowance, l.GuessesPerIP) }

// pastAllowance reports whether any subject's count, plus extra, is past
// per times the subject's factor. n holds one count per subject.
func pastAllowance(subs []subject, n []int64, extra int64, per int) bool {
	for i, sub := range subs {
		if n[i]+extra > int64(per*sub.factor) {
			return true
		}
	}
	return false
}

// guessesLeft reports whether this client may try a user code now, and if
// not, how long until it may: not once one of its subjects has used up its
// share of guess_limit, nor, once guess_limit_total is spent, its share of
// the allowance.
func (s *Service) guessesLeft(ctx context.Context, ip string) (ok bool, retryAfter time.Duration, err error) {
	l := s.cfg.Limits
	if l.Off {
		return true, 0, nil
	}
	now := s.cfg.Now()
	w, ends := window(now, l.GuessWindow)
	subs := subjects(ip)
	steps := make([]Tally, 0, len(subs)+1)
	for _, sub := range subs {
		steps = append(steps, Read(guessKey(sub.prefix, w)))
	}
	n, err := s.tally(ctx, append(steps, Read(guessTotalKey(w)))...)
	if err != nil {
		return false, 0, err
	}
	spent := n[len(subs)] >= int64(l.GuessesTotal)
	if pastAllowance(subs, n, 1, l.GuessesPerIP) || spent && pastAllowance(subs, n, 1, l.guessAllowanceOf()) {
		return false, ends.Sub(now), nil
	}
	return true, 0, nil
}

// wrongGuess counts a wrong user code against the client's subjects and
// the total, and reports whether it was still within the limits. Guesses
// sent all at once all pass guessesLeft before any is counted; the count
// each one gets here is atomic, so only the first ones within the limit
// are answered "wrong code" and the rest "too many", like guesses past
// the limit. One subject past its share stops the count there, so it does
// not use up its wider prefixes' shares or the total.
func (s *Service) wrongGuess(ctx context.Context, ip string) (ok bool, retryAfter time.Duration, err error) {
	l := s.cfg.Limits
	if l.Off {
		return true, 0, nil
	}
	now := s.cfg.Now()
	w, ends := window(now, l.GuessWindow)
	ttl := l.GuessWindow + time.Minute
	subs := subjects(ip)
	steps := shareSteps(subs, guessKeyPrefix, w, ttl, l.GuessesPerIP, 1)
	n, err := s.tally(ctx, append(steps, Hit(guessTotalKey(w), ttl))...)
	if err != nil {
		return false, 0, err
	}
	if len(n) <= len(subs) {
		return false, ends.Sub(now), nil
	}
	if n[len(subs)] > int64(l.GuessesTotal) && pastAllowance(subs, n, 0, l.guessAllowanceOf()) {
		return false, ends.Sub(now), nil
	}
	return true, 0, nil
}

// guessKey and guessTotalKey name the guess counters of window w (the
// admin view reads them too); subject is as subjects names it.
func guessKey(subject, w string) string { return guessKeyPrefix + subject + ":" + w }
func guessTotalKey(w string) string     { return "g:all:" + w }

const guessKeyPrefix = "g:ip:"
