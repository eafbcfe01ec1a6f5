package flow

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// upstream is what the service uses of the upstream: given in the Config,
// or read from the issuer's metadata, maybe only after New has returned
// (Service.upstream is nil until then).
type upstream struct {
	authorizationEndpoint, tokenEndpoint string
	scopesSupported                      []string // mirrored into our metadata
	csp                                  string   // the pages' policy: form-action names the sign-in origin
}

const (
	// The background discovery retries soon at first, for an IdP that
	// starts a moment after Caddy, then at most once a minute.
	discoveryRetryFirst = time.Second
	discoveryRetryMax   = time.Minute
	// issuerSummaryEvery spaces the "still failing" lines of a long
	// outage of the issuer: the usual interval would log every retry.
	issuerSummaryEvery = 5 * time.Minute
)

func (s *Service) setUpstream(authorizationEndpoint, tokenEndpoint string, scopes []string) {
	s.upstream.Store(&upstream{authorizationEndpoint: authorizationEndpoint, tokenEndpoint: tokenEndpoint,
		scopesSupported: scopes, csp: contentSecurityPolicy(authorizationEndpoint)})
}

// discoverIssuer reads the issuer's metadata once. Metadata that is wrong,
// and a host name the DNS says does not exist (a typo, most likely), are
// configuration errors: the load fails, under caddy validate as under
// caddy run or a reload, which keeps the old config running. An issuer
// that does not answer is an outage: it may start after us, or be served
// by the same Caddy, which is not listening yet. Then the service starts
// without it, and reads it again in the background until that works or
// Close; a name that stops resolving by then is logged at error level.
func (s *Service) discoverIssuer(ctx context.Context) error {
	err := s.discover(ctx)
	if err == nil {
		return nil
	}
	if !errors.Is(err, ErrIssuerUnreachable) || errors.Is(err, ErrIssuerHostNotFound) {
		return fmt.Errorf("upstream discovery: %w", err)
	}
	s.log.Warn("device flow issuer unreachable at start; the endpoints answer 503 until its metadata is read",
		zap.String("issuer", s.cfg.Issuer), zap.Error(err))
	s.issuerDown.failedLogged("discovery", err)
	bg, stop := context.WithCancel(context.Background())
	s.stopDiscovery, s.discoveryDone = stop, make(chan struct{})
	go s.rediscover(bg)
	return nil
}

// discoveryTrouble names what is wrong beyond an outage, for an error line
// when it starts: "" for an issuer that does not answer (the outage's own
// lines tell of it).
func discoveryTrouble(err error) string {
	switch {
	case errors.Is(err, ErrIssuerHostNotFound):
		return "device flow issuer host does not resolve (probably a typo in issuer)"
	case errors.Is(err, ErrIssuerUnreachable):
		return ""
	}
	return "device flow issuer metadata is wrong"
}

// rediscover retries the discovery, with backoff, until it works or ctx
// ends. Wrong metadata and a name that does not resolve are retried too:
// by now the service is running, and the issuer may be half-way through
// starting or moving. When what is wrong changes (from discoveryTrouble),
// it says so at once at error level: the outage's summaries, minutes
// apart, would hide a name that stopped resolving or metadata that went
// bad.
func (s *Service) rediscover(ctx context.Context) {
	trouble := "" // the start's: unreachable
	defer close(s.discoveryDone)
	wait := discoveryRetryFirst
	for {
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		err := s.discover(ctx)
		if err == nil {
			s.issuerDown.succeeded()
			return
		}
		if now := discoveryTrouble(err); now != trouble {
			if trouble = now; trouble != "" {
				s.log.Error(trouble+"; looking again", zap.String("issuer", s.cfg.Issuer), zap.Error(err))
			}
		}
		s.issuerDown.failed("discovery", err)
		wait = min(2*wait, discoveryRetryMax)
	}
}

// discover reads the issuer's metadata and, if it is usable, makes its
// endpoints the service's.
func (s *Service) discover(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.UpstreamTimeout)
	defer cancel()
	md, err := Discover(ctx, s.cfg.HTTPClient, s.cfg.Issuer)
	if err != nil {
		return err
	}
	s.setUpstream(md.AuthorizationEndpoint, md.TokenEndpoint, md.ScopesSupported)
	s.log.Info("discovered upstream", zap.String("issuer", s.cfg.Issuer),
		zap.String("authorization_endpoint", md.AuthorizationEndpoint), zap.String("token_endpoint", md.TokenEndpoint))
	return nil
}

// Close stops the background discovery, if one runs, and waits until it
// has: a config reload must not leave it behind.
func (s *Service) Close() {
	if s.stopDiscovery != nil {
		s.stopDiscovery()
		<-s.discoveryDone
	}
}
