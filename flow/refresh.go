package flow

import (
	"errors"
	"net/http"
	"net/url"
	"time"

	"go.uber.org/zap"
)

// relayRefresh passes a refresh_token grant on to the upstream, adding the
// client secret the device does not hold, and hands back its answer.
func (s *Service) relayRefresh(w http.ResponseWriter, r *http.Request, form url.Values) {
	// The client_id may come as HTTP Basic with an empty password:
	// golang.org/x/oauth2 refreshes so once it has seen Basic work.
	clientID, usedBasic, oerr := deviceClientID(r, form)
	if oerr != nil {
		writeOAuthError(w, oerr)
		return
	}
	refresh := form.Get("refresh_token")
	if refresh == "" {
		writeOAuthError(w, badRequest(ErrInvalidRequest, "refresh_token is required"))
		return
	}
	client, oerr := s.client(clientID, usedBasic)
	if oerr != nil {
		writeOAuthError(w, oerr)
		return
	}
	if oerr := onlyRefreshParams(form); oerr != nil {
		writeOAuthError(w, oerr)
		return
	}
	up := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}}
	if requested := form.Get("scope"); requested != "" {
		// The same rules as at /device/code; no scope keeps the scope
		// first granted (RFC 6749 §6), so none is sent.
		scope, oerr := grantedScope(client, requested)
		if oerr != nil {
			writeOAuthError(w, oerr)
			return
		}
		up.Set("scope", scope)
	}
	refusal, err := s.mayRefresh(r.Context(), s.clientIP(r), clientID)
	if err != nil {
		s.storeFailed("count refreshes", err)
		writeOAuthError(w, unavailable())
		return
	}
	if refusal != nil {
		writeOAuthError(w, refusal)
		return
	}
	release, ok := s.refreshSlot()
	if !ok {
		writeOAuthError(w, &oauthError{status: http.StatusServiceUnavailable, Code: ErrTemporarilyUnavail,
			Description: "too many refreshes are waiting on the authorization server; try again", retryAfter: time.Second})
		return
	}
	defer release()
	tokens, err := s.tokenRequest(r.Context(), "refresh", clientID, up)
	if err == nil {
		s.auditRefresh(r, clientID, tokens, "")
		writeJSON(w, http.StatusOK, tokens)
		return
	}
	var ue *upstreamError
	if errors.As(err, &ue) && ue.Code != "" && ue.Status >= 400 && ue.Status < 500 {
		// The upstream refused (expired or revoked refresh token, …): the
		// device must hear exactly that. Routine, so only at debug.
		if ce := s.log.Check(zap.DebugLevel, "upstream refused a refresh"); ce != nil {
			ce.Write(zap.String("client_id", clientID), zap.String("error", ue.Code))
		}
		s.auditRefresh(r, clientID, nil, ue.Code)
		writeOAuthError(w, &oauthError{status: ue.Status, Code: ue.Code, Description: ue.Description})
		return
	}
	writeOAuthError(w, &oauthError{status: http.StatusServiceUnavailable, Code: ErrTemporarilyUnavail,
		Description: "the authorization server did not answer; try again", retryAfter: 5 * time.Second})
}

// refreshParams are all a refresh relay needs (RFC 6749 §6); anything
// else (another grant's code, a client_secret, a resource) is refused
// rather than silently dropped, so a client learns it was not sent on.
var refreshParams = map[string]bool{"grant_type": true, "refresh_token": true, "scope": true, "client_id": true}

func onlyRefreshParams(form url.Values) *oauthError {
	for name := range form {
		if !refreshParams[name] {
			return badRequest(ErrInvalidRequest, "parameter "+quoteParam(name)+" is not accepted with grant_type=refresh_token")
		}
	}
	return nil
}

// auditRefresh records a refresh the upstream answered: with the subject
// of the new ID token when it sent one, or the error it refused with.
func (s *Service) auditRefresh(r *http.Request, clientID string, tokens []byte, refused string) {
	if !s.cfg.Audit.Core().Enabled(auditLevel(AuditRefreshRelayed)) {
		return // no need to read the ID token
	}
	fields := []zap.Field{zap.String("client_id", clientID)}
	if sub := subjectOf(tokens); sub != "" {
		fields = append(fields, zap.String("sub", sub))
	}
	if refused != "" {
		fields = append(fields, zap.String("error", limitText(refused, 64)))
	}
	s.audit(AuditRefreshRelayed, nil, s.clientIP(r), "", fields...)
}
