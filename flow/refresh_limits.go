package flow

import (
	"context"
	"net/http"
	"time"

	"go.uber.org/zap"
)

// refreshAllowance: refresh relays per address (× its prefix's factor)
// per window once a client_id's total is spent. A device refreshes once
// per access-token lifetime, so one refreshing normally from its own
// address stays well within it, whoever spends the total, and so do 100
// devices behind one NAT with 5-minute tokens; the addresses that spent
// it are refused, and their junk no longer reaches the upstream under the
// client's secret. Refresh tokens are not guessed, so what the total
// bounds is load on the upstream: past it each further flooding address
// relays a third of refresh_limit's default 60 a window.
const refreshAllowance = 20

// mayRefresh counts one refresh relay against the client address (IPv6:
// its /64, /56 and /48) and then the client_id (every device of a client
// together), in one store call. A refusal is 429 with Retry-After: the
// relay adds the client secret, so unlimited relays would let anyone
// spend the client's standing at the upstream.
func (s *Service) mayRefresh(ctx context.Context, ip, clientID string) (refusal *oauthError, err error) {
	l := s.cfg.Limits
	if l.Off {
		return nil, nil
	}
	now := s.cfg.Now()
	w, ends := window(now, l.RefreshWindow)
	ttl := l.RefreshWindow + time.Minute
	subs := subjects(ip)
	steps := shareSteps(subs, "r:ip:", w, ttl, l.RefreshPerIP, 1)
	// The client is counted only after the address's own shares, which
	// stop the call when spent, so one address cannot spend a client's.
	n, err := s.tally(ctx, append(steps, Hit("r:client:"+w+":"+clientID, ttl))...)
	if err != nil {
		return nil, err
	}
	overOwn := len(n) <= len(subs)
	overClient := !overOwn && n[len(subs)] > int64(l.RefreshPerIP*refreshPerClientFactor) &&
		pastAllowance(subs, n, 0, min(refreshAllowance, l.RefreshPerIP))
	if overOwn || overClient {
		s.cfg.Observer.Event(EventRefreshLimited)
		s.warnings.warn(s.log, "refresh relays limited", zap.String("client_ip", ip), zap.String("client_id", clientID),
			zap.Bool("client_total_spent", overClient))
		return &oauthError{status: http.StatusTooManyRequests, Code: ErrSlowDown,
			Description: "too many refresh requests; try again later", retryAfter: ends.Sub(now)}, nil
	}
	return nil, nil
}

// refreshSlot takes one of the Limits.RefreshInFlight places for a relay
// to the upstream, without waiting: when all are taken the upstream is
// slow, and queueing would only pile requests up. release gives it back.
func (s *Service) refreshSlot() (release func(), ok bool) {
	if s.cfg.Limits.Off {
		return func() {}, true
	}
	select {
	case s.refreshSlots <- struct{}{}:
		return func() { <-s.refreshSlots }, true
	default:
		return nil, false
	}
}
