package flow

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-device-flow/caddy-device-flow/flow/seal"
)

// serveCallback is the upstream's redirect_uri: it checks the state against
// this browser, trades the code for tokens, and seals them for the device.
// Errors are shown as pages, never redirected anywhere.
func (s *Service) serveCallback(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		s.renderPage(w, r, http.StatusMethodNotAllowed, PageError, &PageData{Error: ErrorBadRequest})
		return
	}
	q := r.URL.Query()
	state := q.Get("state")
	if state == "" || len(state) > 512 {
		s.renderPage(w, r, http.StatusBadRequest, PageError, &PageData{Error: ErrorState})
		return
	}
	if embeddedElsewhere(r) {
		// Another site's page loading the callback cannot be a sign-in
		// coming back; not counted, so it spends no visitor's guesses.
		s.renderPage(w, r, http.StatusForbidden, PageError, &PageData{Error: ErrorBadRequest})
		return
	}
	ctx := r.Context()
	ip := s.clientIP(r)
	// The login is found by the user code the state names, so a state
	// nobody issued is a guess at a sign-in in progress: it counts against
	// the guess limits like a wrong user code. A state a sign-in holds
	// (32 random bytes nobody guesses) is never refused by those limits:
	// the login is taken first, so guessing elsewhere, from this address
	// or any other, cannot keep a person from coming back.
	login, err := s.takeLogin(ctx, state)
	switch {
	case errors.Is(err, ErrNotFound):
		s.log.Debug("callback with an unknown or used state")
		if steeredElsewhere(r) {
			// Another site's page sending the browser here, no person
			// asking: not counted, so it spends no visitor's guesses.
			s.renderPage(w, r, http.StatusBadRequest, PageError, &PageData{Error: ErrorState})
			return
		}
		if ok, retry, err := s.wrongGuess(ctx, ip); err != nil || !ok {
			s.refuseGuess(w, r, ip, retry, err)
			return
		}
		s.renderPage(w, r, http.StatusBadRequest, PageError, &PageData{Error: ErrorState})
		return
	case err != nil:
		s.renderUnavailable(w, r, "take login", err)
		return
	}
	session := s.existingSession(r)
	if session == "" || s.secrets.browserBinding(session) != login.Browser {
		s.warnings.warn(s.log, "callback reached a browser other than the one that started the sign-in")
		s.renderPage(w, r, http.StatusForbidden, PageError, &PageData{Error: ErrorState})
		return
	}
	if !s.cfg.Now().Before(login.ExpiresAt) {
		s.renderPage(w, r, http.StatusBadRequest, PageExpired, &PageData{})
		return
	}

	if upErr := q.Get("error"); upErr != "" {
		s.upstreamSaidNo(w, r, login, upErr, q.Get("error_description"))
		return
	}
	code := q.Get("code")
	if code == "" {
		s.renderPage(w, r, http.StatusBadRequest, PageError, &PageData{Error: ErrorBadRequest})
		return
	}

	var clientID string
	live := false
	if err := s.cfg.Store.UpdateDevice(ctx, login.UserCode, func(d *Device) (Verdict, error) {
		live = s.isLoginFor(login, d) && d.Status == Pending
		if live {
			clientID = d.ClientID
		}
		return Keep, nil
	}); err != nil {
		s.renderUnavailable(w, r, "read device", err)
		return
	}
	if !live {
		s.renderPage(w, r, http.StatusBadRequest, PageExpired, &PageData{})
		return
	}

	verifier, err := seal.OpenVerifier(state, login.Verifier)
	if err != nil {
		// Only a store that was tampered with gets here.
		s.log.Error("stored PKCE verifier could not be opened", zap.Error(err))
		s.renderPage(w, r, http.StatusBadRequest, PageError, &PageData{Error: ErrorState})
		return
	}
	tokens, err := s.exchangeCode(ctx, r, clientID, code, verifier)
	if err != nil {
		// The device keeps hearing authorization_pending: the person may
		// start over while the code is live.
		data := &PageData{Error: ErrorUpstream}
		var ue *upstreamError
		if errors.As(err, &ue) && ue.Code != "" {
			// It answered, with an OAuth error: usually configuration
			// (client secret, redirect URI) or a code used twice.
			s.log.Warn("upstream refused the code exchange", zap.String("client_id", clientID), zap.Error(err))
			data.Error, data.ErrorDetail = ErrorUpstreamError, ue.Code
		} // else tokenRequest logged the failure (see outage)
		s.renderPage(w, r, http.StatusBadGateway, PageError, data)
		return
	}

	var approved *Device
	sub := subjectOf(tokens)
	err = s.cfg.Store.UpdateDevice(ctx, login.UserCode, func(d *Device) (Verdict, error) {
		approved = nil
		if !s.isLoginFor(login, d) || d.Status != Pending {
			return Keep, nil
		}
		sealed, err := seal.Seal(d.SealKey, tokens)
		if err != nil {
			return Keep, err
		}
		// Who approved, from where: for the audit event of the delivery.
		d.Status, d.Sealed, d.Sub, d.ApprovedFrom, approved = Approved, sealed, sub, ip, d
		return Save, nil
	})
	if err != nil {
		s.renderUnavailable(w, r, "approve device", err)
		return
	}
	if approved == nil {
		s.renderPage(w, r, http.StatusBadRequest, PageExpired, &PageData{})
		return
	}
	s.cfg.Observer.Event(EventApproved)
	s.audit(AuditCodeApproved, approved, approved.IssuedTo, ip)
	s.log.Info("device approved", zap.String("client_id", clientID))
	s.renderPage(w, r, http.StatusOK, PageSuccess, &PageData{ClientID: clientID})
}

// takeLogin takes the login the state names, once: a replayed callback
// finds nothing. The state is "<user code>.<random>"; the login under that
// user code is taken only with the state it was made with, so a stale
// state (of an Approve replaced since) or a forged one leaves the sign-in
// in progress alone.
func (s *Service) takeLogin(ctx context.Context, state string) (*Login, error) {
	userCode, _, ok := strings.Cut(state, ".")
	if !ok {
		return nil, ErrNotFound
	}
	return s.cfg.Store.TakeLogin(ctx, s.secrets.loginKey(userCode), s.secrets.stateHash(state))
}

// refuseGuess answers a callback past the guess limits, or when they
// cannot be counted (err).
func (s *Service) refuseGuess(w http.ResponseWriter, r *http.Request, ip string, retry time.Duration, err error) {
	if err != nil {
		s.renderUnavailable(w, r, "check guess limit", err)
		return
	}
	data := &PageData{}
	status, page := s.guessLimited(ip, retry, data)
	s.renderPage(w, r, status, page, data)
}

// isLoginFor reports whether d is the live authorization the login was
// started for (and not another that has its user code since).
func (s *Service) isLoginFor(login *Login, d *Device) bool {
	return d != nil && subtle.ConstantTimeCompare(d.CodeHash, login.CodeHash) == 1 && s.cfg.Now().Before(d.ExpiresAt)
}

// upstreamSaidNo handles error=... at the callback: access_denied reaches
// the device; any other error leaves the code pending so the person may
// try again.
func (s *Service) upstreamSaidNo(w http.ResponseWriter, r *http.Request, login *Login, code, description string) {
	code = errorCode(code)
	if code == ErrAccessDenied {
		denied, err := s.deny(r.Context(), login.UserCode, login.CodeHash, "the user or the authorization server denied the request")
		if err != nil {
			s.renderUnavailable(w, r, "deny", err)
			return
		}
		if denied != nil {
			s.audit(AuditCodeDenied, denied, denied.IssuedTo, s.clientIP(r), zap.String("by", "upstream"))
		}
		s.log.Info("upstream denied the request")
		s.renderPage(w, r, http.StatusOK, PageDenied, &PageData{})
		return
	}
	s.log.Warn("upstream returned an error to the callback", zap.String("error", code),
		zap.String("error_description", limitText(description, 200)))
	s.renderPage(w, r, http.StatusBadGateway, PageError, &PageData{Error: ErrorUpstreamError, ErrorDetail: code})
}
