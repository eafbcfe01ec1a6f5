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
	if _, oerr := s.client(clientID, usedBasic); oerr != nil {
		writeOAuthError(w, oerr)
		return
	}
	up := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}}
	if scope := form.Get("scope"); scope != "" {
		up.Set("scope", scope)
	}
	tokens, err := s.tokenRequest(r.Context(), "refresh", clientID, up)
	if err == nil {
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
		writeOAuthError(w, &oauthError{status: ue.Status, Code: ue.Code, Description: ue.Description})
		return
	}
	writeOAuthError(w, &oauthError{status: http.StatusServiceUnavailable, Code: ErrTemporarilyUnavail,
		Description: "the authorization server did not answer; try again", retryAfter: 5 * time.Second})
}
