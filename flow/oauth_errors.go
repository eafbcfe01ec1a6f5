package flow

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// OAuth error codes (RFC 6749 §5.2, RFC 8628 §3.5).
const (
	ErrInvalidRequest       = "invalid_request"
	ErrInvalidClient        = "invalid_client"
	ErrUnauthorizedClient   = "unauthorized_client"
	ErrInvalidGrant         = "invalid_grant"
	ErrInvalidScope         = "invalid_scope"
	ErrUnsupportedGrantType = "unsupported_grant_type"
	ErrAuthorizationPending = "authorization_pending"
	ErrSlowDown             = "slow_down"
	ErrAccessDenied         = "access_denied"
	ErrExpiredToken         = "expired_token"
	ErrServerError          = "server_error"
	ErrTemporarilyUnavail   = "temporarily_unavailable"
)

// oauthError is an RFC 6749 §5.2 error response.
type oauthError struct {
	status      int
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
	retryAfter  time.Duration
	basicAuth   bool // the client used HTTP Basic: 401 + WWW-Authenticate
}

func (e *oauthError) Error() string { return e.Code + ": " + e.Description }

func badRequest(code, description string) *oauthError {
	return &oauthError{status: http.StatusBadRequest, Code: code, Description: description}
}

// writeJSON answers a device. Every answer may carry a code or a token,
// so none may be cached (RFC 6749 §5.1).
func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(status)
	w.Write(body)
}

// errPending is the answer to almost every request a device flow serves.
var errPending = badRequest(ErrAuthorizationPending, "the user has not yet approved the request")

func writeOAuthError(w http.ResponseWriter, e *oauthError) {
	status := e.status
	if status == 0 {
		status = http.StatusBadRequest
	}
	if e.Code == ErrInvalidClient && e.basicAuth {
		status = http.StatusUnauthorized
		w.Header().Set("WWW-Authenticate", `Basic realm="device_flow"`)
	}
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((e.retryAfter+time.Second-1)/time.Second)))
	}
	body, _ := json.Marshal(e)
	writeJSON(w, status, body)
}

// unavailable is the answer when the store is down: the device should
// simply try again later.
func unavailable() *oauthError {
	return &oauthError{status: http.StatusServiceUnavailable, Code: ErrTemporarilyUnavail,
		Description: "the service is briefly unavailable; try again", retryAfter: 5 * time.Second}
}
