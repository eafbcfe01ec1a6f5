package flow

import (
	"net/http"
	"net/netip"

	"go.uber.org/zap"
)

// Trusted networks (draft-ietf-oauth-cross-device-security, "Trusted
// Networks"): with issue_from set, device codes are issued only to devices
// on those networks, so a phisher must first get onto one of them to
// obtain a code to send around.

// issueFrom are the networks device codes are issued to for client c: its
// own list, or else the site's; empty means anywhere.
func (s *Service) issueFrom(c Client) []netip.Prefix {
	if len(c.IssueFrom) > 0 {
		return c.IssueFrom
	}
	return s.cfg.IssueFrom
}

// onTrustedNetwork refuses a device outside the client's issue_from
// networks.
//
// The answer is unauthorized_client (RFC 6749 §5.2: "not authorized to
// use this authorization grant type"), which is what it is: this client
// may not use the device grant from where it stands. access_denied would
// tell the device's user that a person said no (RFC 8628 §3.5), which
// nobody did. The status is 403 rather than §5.2's default 400: the
// request is well formed and refused for where it comes from (RFC 9110
// §15.5.4), which keeps it apart from malformed requests in access logs;
// OAuth clients read the JSON error of any 4xx answer.
func (s *Service) onTrustedNetwork(clientID string, c Client, ip string) *oauthError {
	allowed := s.issueFrom(c)
	if len(allowed) == 0 {
		return nil
	}
	if addr, err := netip.ParseAddr(ip); err == nil {
		addr = addr.Unmap().WithZone("")
		for _, p := range allowed {
			if p.Contains(addr) {
				return nil
			}
		}
	}
	s.cfg.Observer.Event(EventIssueRefused)
	s.audit(AuditIssueRefused, nil, ip, "", zap.String("client_id", clientID))
	s.warnings.warn(s.log, "device code refused to a device outside issue_from", zap.String("client_id", clientID), zap.String("client_ip", ip))
	return &oauthError{status: http.StatusForbidden, Code: ErrUnauthorizedClient,
		Description: "device codes are not issued to this network"}
}
