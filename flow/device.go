package flow

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"go.uber.org/zap"

	"github.com/caddy-device-flow/caddy-device-flow/flow/seal"
)

// deviceAuthorization is the §3.2 response.
type deviceAuthorization struct {
	DeviceCode              string `json:"device_code"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete"`
	ExpiresIn               int64  `json:"expires_in"`
	Interval                int64  `json:"interval"`
}

// maxUserCodeDraws bounds redraws of a user code that is already live. With
// 20^8 codes even a second draw is rare; 32 draws all miss only when the
// code space is nearly full.
const maxUserCodeDraws = 32

// serveDeviceCode is the device authorization endpoint (RFC 8628 §3.1).
func (s *Service) serveDeviceCode(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, http.MethodPost)
		return
	}
	resp, oerr := s.issueCode(w, r)
	if oerr != nil {
		writeOAuthError(w, oerr)
		return
	}
	body, err := json.Marshal(resp)
	if err != nil {
		writeOAuthError(w, &oauthError{status: http.StatusInternalServerError, Code: ErrServerError})
		return
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *Service) issueCode(w http.ResponseWriter, r *http.Request) (*deviceAuthorization, *oauthError) {
	form, oerr := readForm(w, r)
	if oerr != nil {
		return nil, oerr
	}
	clientID, usedBasic, oerr := deviceClientID(r, form)
	if oerr != nil {
		return nil, oerr
	}
	client, oerr := s.client(clientID, usedBasic)
	if oerr != nil {
		return nil, oerr
	}
	scope, oerr := grantedScope(client, form.Get("scope"))
	if oerr != nil {
		return nil, oerr
	}
	ctx := r.Context()
	ip := s.clientIP(r)
	if refusal := s.onTrustedNetwork(clientID, client, ip); refusal != nil {
		return nil, refusal
	}
	refusal, err := s.mayIssue(ctx, ip)
	if err != nil {
		s.storeFailed("count issued codes", err)
		return nil, unavailable()
	}
	if refusal != nil {
		s.cfg.Observer.Event(EventIssueLimited)
		return nil, refusal
	}

	deviceCodes := s.secrets.deviceCodes()
	var deviceCode string
	now := s.cfg.Now()
	rec := &Device{
		ClientID:  clientID,
		Scope:     scope,
		Status:    Pending,
		CreatedAt: now,
		ExpiresAt: now.Add(s.cfg.ExpiresIn),
		Interval:  s.cfg.Interval,
		IssuedTo:  ip,
	}
	for draw := 0; ; draw++ {
		rec.UserCode = s.cfg.UserCode.New()
		deviceCode, rec.CodeHash = deviceCodes.New(rec.UserCode) // the code carries its user code
		// The key the tokens will be sealed to: derived now, so the
		// person may sign in whenever they like, before the device's
		// first poll or long after its last.
		if rec.SealKey, err = seal.PublicKey(deviceCode); err != nil {
			s.log.Error("deriving the seal key failed", zap.Error(err))
			return nil, &oauthError{status: http.StatusInternalServerError, Code: ErrServerError}
		}
		err = s.cfg.Store.CreateDevice(ctx, rec)
		if !errors.Is(err, ErrUserCodeTaken) || draw == maxUserCodeDraws {
			break
		}
	}
	if err != nil {
		s.storeFailed("create device code", err)
		return nil, unavailable()
	}
	s.cfg.Observer.Event(EventCodeIssued)
	s.audit(AuditCodeIssued, rec, ip, "", zap.String("scope", scope))
	if ce := s.log.Check(zap.DebugLevel, "device code issued"); ce != nil {
		ce.Write(zap.String("client_id", clientID), zap.String("scope", scope), zap.String("client_ip", ip))
	}
	display := s.cfg.UserCode.Display(rec.UserCode)
	verify := s.baseURL(r) + s.paths.Verify
	return &deviceAuthorization{
		DeviceCode:              deviceCode,
		UserCode:                display,
		VerificationURI:         verify,
		VerificationURIComplete: verify + "?code=" + url.QueryEscape(display),
		ExpiresIn:               int64(s.cfg.ExpiresIn.Seconds()),
		Interval:                int64(s.cfg.Interval.Seconds()),
	}, nil
}

// deviceClientID is the client_id of a device request: from the form, or
// from HTTP Basic if the client used it (then both must agree).
func deviceClientID(r *http.Request, form url.Values) (id string, usedBasic bool, oerr *oauthError) {
	id = form.Get("client_id")
	if user, _, ok := r.BasicAuth(); ok {
		usedBasic = true
		// RFC 6749 §2.3.1: form-encoded before Basic (x/oauth2 does so).
		decoded, err := url.QueryUnescape(user)
		if err != nil {
			return "", true, badRequest(ErrInvalidRequest, "the HTTP Basic user is not form-encoded")
		}
		user = decoded
		if id != "" && id != user {
			return "", true, badRequest(ErrInvalidRequest, "client_id differs from the HTTP Basic user")
		}
		id = user
	}
	if id == "" {
		return "", usedBasic, badRequest(ErrInvalidRequest, "client_id is required")
	}
	if len(id) > 255 {
		return "", usedBasic, &oauthError{Code: ErrInvalidClient, Description: "unknown client", basicAuth: usedBasic}
	}
	return id, usedBasic, nil
}

// client is the allow-listed client, or a client with no name and no
// restrictions when there is no allow-list.
func (s *Service) client(id string, usedBasic bool) (Client, *oauthError) {
	if len(s.cfg.Clients) == 0 {
		return Client{Name: id}, nil
	}
	c, ok := s.cfg.Clients[id]
	if !ok {
		return Client{}, &oauthError{Code: ErrInvalidClient, Description: "unknown client", basicAuth: usedBasic}
	}
	if c.Name == "" {
		c.Name = id
	}
	return c, nil
}

// grantedScope checks the requested scope (RFC 6749 §3.3) against the
// client's allowed scopes. No scope asks for all the client may have.
func grantedScope(c Client, requested string) (string, *oauthError) {
	if len(requested) > 1024 {
		return "", badRequest(ErrInvalidScope, "scope is too long")
	}
	scopes := splitScope(requested)
	for _, sc := range scopes {
		if !validScopeToken(sc) {
			return "", badRequest(ErrInvalidScope, "scope contains characters that are not allowed")
		}
		if len(c.Scopes) > 0 && !contains(c.Scopes, sc) {
			return "", badRequest(ErrInvalidScope, "scope "+quoteParam(sc)+" is not allowed for this client")
		}
	}
	if len(scopes) == 0 {
		scopes = c.Scopes
	}
	return strings.Join(scopes, " "), nil
}

// validScopeToken: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
func validScopeToken(t string) bool {
	for i := 0; i < len(t); i++ {
		c := t[i]
		if c < 0x21 || c == 0x22 || c == 0x5c || c > 0x7e {
			return false
		}
	}
	return t != ""
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// splitScope splits on spaces only (RFC 6749 §3.3); other white space is
// then refused as a character of a scope token.
func splitScope(s string) []string {
	var out []string
	for _, t := range strings.Split(s, " ") {
		if t != "" {
			out = append(out, t)
		}
	}
	return out
}
