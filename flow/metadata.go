package flow

import (
	"encoding/json"
	"net/http"
)

// serveMetadata is our RFC 8414 authorization server metadata. The issuer
// is our own origin; token and id_token still come from the upstream, so a
// client that validates an id_token is configured with the upstream's
// issuer (see README).
func (s *Service) serveMetadata(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, "GET, HEAD")
		return
	}
	base := s.baseURL(r)
	md := map[string]any{
		"issuer":                                base + s.cfg.Prefix,
		"device_authorization_endpoint":         base + s.paths.DeviceCode,
		"token_endpoint":                        base + s.paths.Token,
		"grant_types_supported":                 []string{deviceCodeGrant, "refresh_token"},
		"token_endpoint_auth_methods_supported": []string{"none"},
		"response_types_supported":              []string{},
	}
	if scopes := s.upstream.Load().scopesSupported; len(scopes) > 0 {
		md["scopes_supported"] = scopes
	}
	body, _ := json.Marshal(md)
	w.Header().Set("Content-Type", "application/json")
	// Built from Host unless base_url fixes the origin: a shared cache
	// must not hand one Host's document to requests for another.
	if s.cfg.BaseURL != "" {
		w.Header().Set("Cache-Control", "public, max-age=300")
	} else {
		w.Header().Set("Cache-Control", "no-store")
	}
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}
