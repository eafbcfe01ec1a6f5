package flow

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"net/url"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-device-flow/caddy-device-flow/flow/seal"
)

// serveVerify is the verification URI (RFC 8628 §3.3): GET shows the entry
// page, or — with ?code= from verification_uri_complete — the confirmation
// page; POST takes the forms (lookup, approve, deny).
func (s *Service) serveVerify(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		s.showVerify(w, r)
	case http.MethodPost:
		s.submitVerify(w, r)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		s.renderPage(w, r, http.StatusMethodNotAllowed, PageError, &PageData{Error: ErrorBadRequest})
	}
}

func (s *Service) showVerify(w http.ResponseWriter, r *http.Request) {
	session := s.browserSession(w, r)
	q := r.URL.Query()
	if result := q.Get("result"); result == "denied" {
		s.renderPage(w, r, http.StatusOK, PageDenied, &PageData{})
		return
	}
	typed := q.Get("code")
	if typed == "" {
		typed = q.Get("user_code")
	}
	data := &PageData{CSRF: s.secrets.csrfToken(session), FormAction: s.paths.Verify}
	if typed == "" {
		s.renderPage(w, r, http.StatusOK, PageEnter, data)
		return
	}
	if embeddedElsewhere(r) {
		// Another site's page loading a code: looked up for nobody.
		s.renderPage(w, r, http.StatusForbidden, PageError, &PageData{Error: ErrorBadRequest})
		return
	}
	if steeredElsewhere(r) {
		// Another site's page sent the browser here, no person asked:
		// the code waits on the entry page, looked up for nobody.
		data.UserCode = limitText(typed, 32)
		s.renderPage(w, r, http.StatusOK, PageEnter, data)
		return
	}
	d, status, page := s.lookUp(r, typed, data)
	if d == nil {
		s.renderPage(w, r, status, page, data)
		return
	}
	s.fillConfirm(r, d, data)
	s.renderPage(w, r, http.StatusOK, PageConfirm, data)
}

// lookupMiss says why a typed user code found no pending authorization.
type lookupMiss int

const (
	found           lookupMiss = iota
	missUnknown                // unknown, malformed, expired or used: one answer for all
	missLimited                // past the guess limits (retry says for how long)
	missLocked                 // live, but locked: opened from too many networks (noteOpened)
	missUnavailable            // the store failed (already noted)
)

// findPending finds the pending authorization of a typed user code,
// counting wrong codes against the guess limits. Every way of looking a
// code up (the page, the QR image) goes through it, so none is an oracle
// for live codes that the limits do not cover.
func (s *Service) findPending(ctx context.Context, ip, typed string) (d *Device, miss lookupMiss, retry time.Duration) {
	ok, retry, err := s.guessesLeft(ctx, ip)
	switch {
	case err != nil:
		s.storeFailed("check guess limit", err)
		return nil, missUnavailable, 0
	case !ok:
		return nil, missLimited, retry
	}
	if code := s.cfg.UserCode.Normalize(typed); code != "" {
		d, err = s.cfg.Store.DeviceByUserCode(ctx, code)
		if err != nil && !errors.Is(err, ErrNotFound) {
			s.storeFailed("find user code", err)
			return nil, missUnavailable, 0
		}
	}
	live := d != nil && s.cfg.Now().Before(d.ExpiresAt)
	if live && d.Locked() {
		// The right code, made useless: saying so tells nobody anything
		// they could use, and warns the next person it was sent to.
		return nil, missLocked, 0
	}
	if !live || d.Status != Pending {
		s.cfg.Observer.Event(EventWrongCode)
		ok, retry, err := s.wrongGuess(ctx, ip)
		switch {
		case err != nil:
			s.storeFailed("count wrong guess", err)
			return nil, missUnavailable, 0
		case !ok:
			return nil, missLimited, retry
		}
		return nil, missUnknown, 0
	}
	// The right code: check again, since wrong guesses sent alongside this
	// one may have used up the allowance after the first check.
	if ok, retry, err = s.guessesLeft(ctx, ip); err != nil {
		s.storeFailed("check guess limit", err)
		return nil, missUnavailable, 0
	} else if !ok {
		return nil, missLimited, retry
	}
	return d, found, 0
}

// lookUp is findPending for the pages. When it returns nil, data holds
// the error and status/page say what to show.
func (s *Service) lookUp(r *http.Request, typed string, data *PageData) (d *Device, status int, page string) {
	ip := s.clientIP(r)
	data.UserCode = limitText(typed, 32)
	d, miss, retry := s.findPending(r.Context(), ip, typed)
	switch miss {
	case missUnavailable:
		data.Error, data.RetryAfter = ErrorUnavailable, 5
		return nil, http.StatusServiceUnavailable, PageError
	case missLimited:
		status, page = s.guessLimited(ip, retry, data)
		return nil, status, page
	case missUnknown:
		data.Error = ErrorInvalidCode
		return nil, http.StatusBadRequest, PageEnter
	case missLocked:
		data.Error = ErrorLocked
		return nil, http.StatusForbidden, PageError
	}
	data.UserCode = s.cfg.UserCode.Display(d.UserCode)
	switch locked, err := s.noteOpened(r.Context(), d, ip); {
	case err != nil:
		s.storeFailed("note where the code was opened", err)
		data.Error, data.RetryAfter = ErrorUnavailable, 5
		return nil, http.StatusServiceUnavailable, PageError
	case locked:
		data.Error = ErrorLocked
		return nil, http.StatusForbidden, PageError
	}
	return d, http.StatusOK, ""
}

// guessLimited is the answer past the guess limits, for right and wrong
// codes alike.
func (s *Service) guessLimited(ip string, retry time.Duration, data *PageData) (int, string) {
	s.cfg.Observer.Event(EventGuessLimited)
	s.warnings.warn(s.log, "user code guesses limited", zap.String("client_ip", ip))
	data.Error = ""
	data.RetryAfter = int((retry + time.Second - 1) / time.Second)
	return http.StatusTooManyRequests, PageTooMany
}

// approvesLeft counts an Approve against the client's limit. It returns
// status 0 when the Approve may go on, else the answer to render.
func (s *Service) approvesLeft(r *http.Request, data *PageData) (status int, page string) {
	ip := s.clientIP(r)
	ok, retry, err := s.mayApprove(r.Context(), ip)
	switch {
	case err != nil:
		s.storeFailed("count approvals", err)
		data.Error, data.RetryAfter = ErrorUnavailable, 5
		return http.StatusServiceUnavailable, PageError
	case !ok:
		s.cfg.Observer.Event(EventApproveLimited)
		s.warnings.warn(s.log, "approvals limited", zap.String("client_ip", ip))
		data.RetryAfter = int((retry + time.Second - 1) / time.Second)
		return http.StatusTooManyRequests, PageTooMany
	}
	return 0, ""
}

// fillConfirm adds who is asking for what (RFC 8628 §5.4: the person must
// see it before anything is granted), and where and when the code was asked
// for, compared with where the person is (the cross-device BCP's "User
// Experience" and "Establish Proximity").
func (s *Service) fillConfirm(r *http.Request, d *Device, data *PageData) proximity {
	c, _ := s.client(d.ClientID, false)
	data.ClientID = d.ClientID
	data.ClientName = c.Name
	data.Scopes = splitScope(d.Scope)
	data.VerificationURIComplete = s.baseURL(r) + s.paths.Verify + "?code=" + url.QueryEscape(data.UserCode)
	data.QRPath = s.paths.QR + "?user_code=" + url.QueryEscape(data.UserCode)
	p := s.proximityOf(r, d)
	data.DeviceNetwork, data.DevicePlace = coarseNetwork(p.device), knownPlace(p.devicePlace)
	data.AskedAgo = max(0, int(s.cfg.Now().Sub(d.CreatedAt)/time.Second))
	if p.far() {
		data.Proximity = string(p.mode)
		data.BrowserNetwork, data.BrowserPlace = coarseNetwork(p.browser), knownPlace(p.browserPlace)
	}
	return p
}

// knownPlace is p for a page, nil when it says nothing.
func knownPlace(p Place) *Place {
	if !p.Known() {
		return nil
	}
	return &p
}

// nearEnough applies the proximity check to an Approve. It returns status
// 0 when the Approve may go on (the person is near the device, or the mode
// is only warn), else the page to render: the approval is not performed
// and the code stays pending, so the person may try again from the
// device's network.
func (s *Service) nearEnough(r *http.Request, d *Device, data *PageData) (status int, page string) {
	p := s.fillConfirm(r, d, data)
	if !p.far() {
		return 0, ""
	}
	fields := []zap.Field{
		zap.String("client_id", d.ClientID), zap.String("device_ip", d.IssuedTo), zap.String("client_ip", s.clientIP(r)),
		zap.String("proximity", string(p.mode)),
	}
	if p.devicePlace.Country != "" || p.browserPlace.Country != "" {
		fields = append(fields, zap.String("device_country", p.devicePlace.Country), zap.String("client_country", p.browserPlace.Country))
	}
	s.audit(AuditProximityMismatch, d, d.IssuedTo, s.clientIP(r),
		zap.String("proximity", string(p.mode)), zap.Bool("refused", p.mode == ProximityRequire))
	if p.mode == ProximityRequire {
		s.cfg.Observer.Event(EventProximityRefused)
		s.log.Warn("approval refused: the person is not on the device's network", fields...)
		// "Try again" opens this code's confirmation page again.
		data.StartOver = s.paths.Verify + "?code=" + url.QueryEscape(data.UserCode)
		return http.StatusForbidden, PageTooFar
	}
	s.cfg.Observer.Event(EventProximityWarned)
	s.log.Info("approved from another network than the device's", fields...)
	return 0, ""
}

// submitVerify handles the forms. Every POST must carry the CSRF token of
// the browser's session; every outcome is a 303 to a page or the upstream.
func (s *Service) submitVerify(w http.ResponseWriter, r *http.Request) {
	form, oerr := readForm(w, r)
	if oerr != nil {
		status := http.StatusBadRequest
		if oerr.status == http.StatusRequestEntityTooLarge {
			status = oerr.status
		}
		s.renderPage(w, r, status, PageError, &PageData{Error: ErrorBadRequest})
		return
	}
	session := s.browserSession(w, r)
	data := &PageData{CSRF: s.secrets.csrfToken(session), FormAction: s.paths.Verify}
	if !s.validCSRF(r, form.Get("csrf")) {
		data.Error = ErrorCSRF
		if form.Get("csrf") != "" && s.existingSession(r) != "" {
			// A session we issued, and a form of another: Approve started
			// a new session since this page was shown (the person went
			// Back to it, or approved in another tab).
			data.Error = ErrorPageUsed
		}
		data.UserCode = limitText(form.Get("user_code"), 32)
		s.renderPage(w, r, http.StatusForbidden, PageEnter, data)
		return
	}
	typed := form.Get("user_code")
	switch form.Get("action") {
	case "", "lookup":
		// The code goes to the confirmation page by GET, which checks it.
		http.Redirect(w, r, s.paths.Verify+"?code="+url.QueryEscape(limitText(typed, 32)), http.StatusSeeOther)
	case "approve":
		d, status, page := s.lookUp(r, typed, data)
		if d == nil {
			s.renderPage(w, r, status, page, data)
			return
		}
		if status, page := s.approvesLeft(r, data); status != 0 {
			s.renderPage(w, r, status, page, data)
			return
		}
		if status, page := s.nearEnough(r, d, data); status != 0 {
			s.renderPage(w, r, status, page, data)
			return
		}
		// A fresh session for the sign-in: one planted in this browser
		// (its CSRF token known to whoever planted it) is left behind.
		s.startLogin(w, r, d, s.newSession(w, r))
	case "deny":
		d, status, page := s.lookUp(r, typed, data)
		if d == nil {
			s.renderPage(w, r, status, page, data)
			return
		}
		denied, err := s.deny(r.Context(), d.UserCode, d.CodeHash, "the user denied the request")
		if err != nil {
			s.renderUnavailable(w, r, "deny", err)
			return
		}
		if denied != nil {
			s.audit(AuditCodeDenied, denied, denied.IssuedTo, s.clientIP(r), zap.String("by", "person"))
		}
		s.log.Info("person denied the request", zap.String("client_id", d.ClientID))
		http.Redirect(w, r, s.paths.Verify+"?result=denied", http.StatusSeeOther)
	default:
		s.renderPage(w, r, http.StatusBadRequest, PageError, &PageData{Error: ErrorBadRequest})
	}
}

// startLogin sends the browser to the upstream with a fresh state and PKCE
// verifier, both one-time, bound to this browser. The login replaces any
// earlier one of the same authorization, so pressing Approve again and
// again never grows the store; the state names the user code so that the
// callback finds the login.
func (s *Service) startLogin(w http.ResponseWriter, r *http.Request, d *Device, session string) {
	state, verifier := d.UserCode+"."+randomToken(32), randomToken(32)
	sealed, err := seal.Verifier(state, verifier)
	if err != nil {
		s.renderPage(w, r, http.StatusInternalServerError, PageError, &PageData{Error: ErrorUnknown})
		return
	}
	login := &Login{
		UserCode:  d.UserCode,
		CodeHash:  d.CodeHash,
		State:     s.secrets.stateHash(state),
		Verifier:  sealed,
		Browser:   s.secrets.browserBinding(session),
		ExpiresAt: d.ExpiresAt,
	}
	if err := s.cfg.Store.PutLogin(r.Context(), s.secrets.loginKey(d.UserCode), login); err != nil {
		s.renderUnavailable(w, r, "store login", err)
		return
	}
	s.log.Info("person approved; sending to upstream", zap.String("client_id", d.ClientID))
	http.Redirect(w, r, s.authorizeURL(r, d, state, verifier), http.StatusSeeOther)
}

// deny marks a pending authorization denied; the device hears
// access_denied. codeHash names the authorization: its user code may have
// gone to another since the person saw it. It returns the denied record,
// nil when there was nothing pending to deny.
func (s *Service) deny(ctx context.Context, userCode string, codeHash []byte, reason string) (*Device, error) {
	var denied *Device
	err := s.cfg.Store.UpdateDevice(ctx, userCode, func(d *Device) (Verdict, error) {
		denied = nil // fn may run again on a newer record
		if d == nil || subtle.ConstantTimeCompare(d.CodeHash, codeHash) != 1 || d.Status != Pending {
			return Keep, nil
		}
		d.Status, d.Reason, denied = Denied, reason, d
		return Save, nil
	})
	if err != nil {
		return nil, err
	}
	if denied != nil {
		s.cfg.Observer.Event(EventDenied)
	}
	return denied, nil
}
