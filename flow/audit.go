package flow

import (
	"encoding/base64"
	"encoding/json"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Audit events (draft-ietf-oauth-cross-device-security, "Detect and
// Remediate"): one line per step of every authorization on a logger of
// their own (Config.Audit), for a SIEM to watch for phishing: one code
// opened from many places, a device far from the person approving it,
// tokens picked up from an unexpected address. The event's name is the
// log message. Every event carries what is known of: client_id,
// user_code, device_ip (the address the code was issued to), person_ip
// (the browser's), sub (the upstream's subject, once signed in), and with
// Config.Place, device_place and person_place. Never a device code,
// token, secret, cookie, state or PKCE verifier.
const (
	AuditCodeIssued        = "code_issued"        // a device got a code
	AuditIssueRefused      = "issue_refused"      // a device outside issue_from asked for one
	AuditCodeOpened        = "code_opened"        // a person opened the confirmation page of a code
	AuditCodeApproved      = "code_approved"      // a person signed in at the upstream and approved
	AuditCodeDenied        = "code_denied"        // a person, the upstream or the operator said no ("by")
	AuditCodeLocked        = "code_locked"        // opened from more networks than code_networks allows
	AuditProximityMismatch = "proximity_mismatch" // the person is far from the device
	AuditTokensDelivered   = "tokens_delivered"   // the device picked the tokens up ("poll_ip")
	AuditRefreshRelayed    = "refresh_relayed"    // a refresh_token grant went to the upstream
)

// auditLevel: what needs a look is a warning, the rest information.
func auditLevel(event string) zapcore.Level {
	switch event {
	case AuditIssueRefused, AuditCodeLocked, AuditProximityMismatch:
		return zap.WarnLevel
	}
	return zap.InfoLevel
}

// audit writes one audit event. d is the authorization it is about (nil
// when there is none: issue_refused, refresh_relayed); deviceIP is the
// device's address, personIP the person's ("" when no person takes part).
func (s *Service) audit(event string, d *Device, deviceIP, personIP string, extra ...zap.Field) {
	ce := s.cfg.Audit.Check(auditLevel(event), event)
	if ce == nil {
		return
	}
	fields := make([]zap.Field, 0, 8+len(extra))
	if d != nil {
		fields = append(fields, zap.String("client_id", d.ClientID), zap.String("user_code", s.cfg.UserCode.Display(d.UserCode)))
	}
	fields = s.addressFields(fields, "device", deviceIP)
	fields = s.addressFields(fields, "person", personIP)
	if d != nil && d.Sub != "" {
		fields = append(fields, zap.String("sub", d.Sub))
	}
	ce.Write(append(fields, extra...)...)
}

// addressFields adds <who>_ip and, with Config.Place, <who>_place.
func (s *Service) addressFields(fields []zap.Field, who, ip string) []zap.Field {
	if ip == "" {
		return fields
	}
	fields = append(fields, zap.String(who+"_ip", ip))
	if s.cfg.Place != nil {
		if place := s.cfg.Place(ip); place != "" {
			fields = append(fields, zap.String(who+"_place", place))
		}
	}
	return fields
}

// maxSubject bounds the subject we keep and log; OpenID Connect Core §2
// allows 255 ASCII characters.
const maxSubject = 255

// subjectOf is the sub claim of the ID token in a token response, "" when
// there is none or it cannot be read. The signature is not checked: the
// subject only labels audit events, and the token came straight from the
// upstream's token endpoint, over the connection we opened to it, which
// is what OpenID Connect Core §3.1.3.7 lets a client rely on instead of
// the signature. Nothing else of the ID token is kept.
func subjectOf(tokenResponse []byte) string {
	var resp struct {
		IDToken string `json:"id_token"`
	}
	if json.Unmarshal(tokenResponse, &resp) != nil {
		return ""
	}
	parts := strings.Split(resp.IDToken, ".")
	if len(parts) != 3 { // a JWS; an encrypted ID token (JWE) has 5 parts
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return ""
	}
	var claims struct {
		Sub string `json:"sub"`
	}
	if json.Unmarshal(payload, &claims) != nil || len(claims.Sub) > maxSubject {
		return ""
	}
	return limitText(claims.Sub, maxSubject)
}
