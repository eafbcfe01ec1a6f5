package flow

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"

	"go.uber.org/zap"
)

// Service is the device flow: it answers its own paths and leaves every
// other request alone.
type Service struct {
	cfg     Config
	paths   Paths
	log     *zap.Logger
	secrets secrets // see loadSecrets
	// upstream is nil until the issuer's metadata has been read
	// (discoverIssuer); the endpoints answer 503 until then.
	upstream atomic.Pointer[upstream]
	// stopDiscovery ends the background discovery, which closes
	// discoveryDone; both nil when none runs.
	stopDiscovery context.CancelFunc
	discoveryDone chan struct{}
	// storeDown, upstreamDown and issuerDown log outages without a line
	// per request or retry.
	storeDown, upstreamDown, issuerDown *outage
	// warnings keeps the warnings of refused requests to a line per 10 s.
	warnings throttle
	// refreshSlots holds one token per refresh relay waiting on the
	// upstream (refreshSlot).
	refreshSlots chan struct{}
}

// New checks the configuration and prepares the service. ctx bounds the
// first discovery of the issuer. Close
// the service when done with it.
func New(ctx context.Context, cfg Config) (*Service, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, paths: pathsFor(cfg.Prefix), log: cfg.Logger,
		refreshSlots: make(chan struct{}, cfg.Limits.RefreshInFlight)}
	s.storeDown, s.upstreamDown = newOutage(s.log, "store"), newOutage(s.log, "upstream")
	s.issuerDown = newOutage(s.log, "issuer")
	s.issuerDown.throttle.every = issuerSummaryEvery
	if cfg.ServerSecret != nil {
		s.useServerSecret()
	}
	// The store is not read here: it may open only when the config starts
	// (Badger), or be down (Redis). The server secret is read at the first
	// request that needs it, and the pages answer 503 while the store
	// cannot give it.
	s.cfg.Store = watchedStore{Store: s.cfg.Store, outage: s.storeDown}
	if cfg.Issuer == "" {
		s.setUpstream(cfg.AuthorizationEndpoint, cfg.TokenEndpoint, nil)
	} else if err := s.discoverIssuer(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Handles reports whether the request is for one of the service's paths.
func (s *Service) Handles(r *http.Request) bool {
	switch r.URL.Path {
	case s.paths.DeviceCode, s.paths.Token, s.paths.Verify, s.paths.Callback, s.paths.QR, s.paths.Metadata:
		return true
	}
	return false
}

// ServeHTTP answers a request for one of the service's paths (see Handles).
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case s.paths.Verify, s.paths.Callback, s.paths.QR:
		// What a browser can be made to load by GET (see embedded.go).
		w.Header()["Cross-Origin-Resource-Policy"] = corp
		s.setHSTS(w, r)
	}
	if s.upstream.Load() == nil && r.URL.Path != s.paths.QR {
		// The issuer's metadata is not read yet (issuerDown logs why).
		// QR images need no upstream.
		if r.URL.Path == s.paths.Verify || r.URL.Path == s.paths.Callback {
			s.renderPage(w, r, http.StatusServiceUnavailable, PageError, &PageData{Error: ErrorUnavailable, RetryAfter: 5})
		} else {
			writeOAuthError(w, unavailable())
		}
		return
	}
	switch r.URL.Path {
	case s.paths.DeviceCode, s.paths.Token:
		// Both need the server secret: device codes carry a MAC under it
		// (flow/codes).
		if err := s.loadSecrets(r.Context()); err != nil {
			s.storeFailed("load server secret", err)
			writeOAuthError(w, unavailable())
			return
		}
		if r.URL.Path == s.paths.DeviceCode {
			s.serveDeviceCode(w, r)
		} else {
			s.serveToken(w, r)
		}
	case s.paths.Verify, s.paths.Callback:
		// Both need the server secret (CSRF, state keys).
		if err := s.loadSecrets(r.Context()); err != nil {
			s.renderUnavailable(w, r, "load server secret", err)
			return
		}
		if r.URL.Path == s.paths.Verify {
			s.serveVerify(w, r)
		} else {
			s.serveCallback(w, r)
		}
	case s.paths.QR:
		s.serveQR(w, r)
	case s.paths.Metadata:
		s.serveMetadata(w, r)
	default:
		http.NotFound(w, r)
	}
}

// clientIP is the address limits are counted against.
func (s *Service) clientIP(r *http.Request) string {
	if s.cfg.ClientIP != nil {
		if ip := s.cfg.ClientIP(r); ip != "" {
			return ip
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// baseURL is our public origin: configured, or the request's own.
func (s *Service) baseURL(r *http.Request) string {
	if s.cfg.BaseURL != "" {
		return strings.TrimSuffix(s.cfg.BaseURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func (s *Service) isHTTPS(r *http.Request) bool {
	if s.cfg.BaseURL != "" {
		return strings.HasPrefix(s.cfg.BaseURL, "https:")
	}
	return r.TLS != nil
}

// pageCSP is the pages' Content-Security-Policy. Before the issuer's
// metadata is read, no form leads to the upstream.
func (s *Service) pageCSP() string {
	if up := s.upstream.Load(); up != nil {
		return up.csp
	}
	return contentSecurityPolicy("")
}

// contentSecurityPolicy allows the pages nothing from elsewhere, except
// that a form may lead on (by our 303) to the upstream's sign-in page.
func contentSecurityPolicy(authorizationEndpoint string) string {
	formAction := "'self'"
	if u, err := url.Parse(authorizationEndpoint); err == nil && u.Host != "" {
		formAction += " " + u.Scheme + "://" + u.Host
	}
	return "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action " + formAction +
		"; frame-ancestors 'none'; base-uri 'none'"
}

// storeFailed notes a store failure (see outage).
func (s *Service) storeFailed(op string, err error) {
	s.storeDown.failed(op, err)
}
