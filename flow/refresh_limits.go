package flow

import (
	"context"
	"net/http"
	"time"

	"go.uber.org/zap"
)

// mayRefresh counts one refresh relay against the client address and the
// client_id (every device of a client together). A refusal is 429 with
// Retry-After: the relay adds the client secret, so unlimited relays would
// let anyone spend the client's standing at the upstream.
func (s *Service) mayRefresh(ctx context.Context, ip, clientID string) (refusal *oauthError, err error) {
	l := s.cfg.Limits
	if l.Off {
		return nil, nil
	}
	now := s.cfg.Now()
	w, ends := window(now, l.RefreshWindow)
	ttl := l.RefreshWindow + time.Minute
	perIP, err := s.hit(ctx, "r:ip:"+limitSubject(ip)+":"+w, ttl)
	if err != nil {
		return nil, err
	}
	perClient := int64(0)
	if perIP <= int64(l.RefreshPerIP) {
		// Only counted within the address's allowance, so one address
		// cannot spend a client's.
		if perClient, err = s.hit(ctx, "r:client:"+w+":"+clientID, ttl); err != nil {
			return nil, err
		}
	}
	if perIP > int64(l.RefreshPerIP) || perClient > int64(l.RefreshPerIP)*refreshPerClientFactor {
		s.cfg.Observer.Event(EventRefreshLimited)
		s.warnings.warn(s.log, "refresh relays limited", zap.String("client_ip", ip), zap.String("client_id", clientID))
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
