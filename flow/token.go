package flow

import (
	"crypto/subtle"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-device-flow/caddy-device-flow/flow/codes"
	"github.com/caddy-device-flow/caddy-device-flow/flow/seal"
)

const deviceCodeGrant = "urn:ietf:params:oauth:grant-type:device_code"

// serveToken is the token endpoint: device_code polling (RFC 8628 §3.4,
// §3.5), and refresh_token relayed to the upstream so a device needs one
// base URL only.
func (s *Service) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, http.MethodPost)
		return
	}
	form, oerr := readForm(w, r)
	if oerr != nil {
		writeOAuthError(w, oerr)
		return
	}
	switch form.Get("grant_type") {
	case deviceCodeGrant:
		// client_id from the form, or from HTTP Basic (RFC 6749 §2.3.1).
		clientID, _, oerr := deviceClientID(r, form)
		if oerr != nil {
			writeOAuthError(w, oerr)
			return
		}
		tokens, oerr := s.poll(r, form.Get("device_code"), clientID)
		if oerr != nil {
			writeOAuthError(w, oerr)
			return
		}
		writeJSON(w, http.StatusOK, tokens)
	case "refresh_token":
		s.relayRefresh(w, r, form)
	case "":
		writeOAuthError(w, badRequest(ErrInvalidRequest, "grant_type is required"))
	default:
		writeOAuthError(w, badRequest(ErrUnsupportedGrantType, "grant_type must be "+deviceCodeGrant+" or refresh_token"))
	}
}

// pollSlack is how early an honest client may poll without slow_down:
// polls arrive a little early through jitter, and some clients give up
// after a second slow_down, so only a client that really polls too fast
// should see one: a fifth of the interval, at most a second.
func pollSlack(interval time.Duration) time.Duration {
	return min(interval/5, time.Second)
}

// retryWindow is how soon after a poll its immediate repeat must come to
// be forgiven as a retry rather than counted as polling too fast.
const retryWindow = time.Second

// poll answers one device_code poll. Everything it decides, it decides in
// one atomic update of the record: the interval check, the slow_down
// penalty, and taking the tokens exactly once.
func (s *Service) poll(r *http.Request, deviceCode, clientID string) ([]byte, *oauthError) {
	if deviceCode == "" || clientID == "" {
		return nil, badRequest(ErrInvalidRequest, "device_code and client_id are required")
	}
	// A code this handler did not make is refused here, before the store.
	userCode, ours := s.secrets.deviceCodes().Parse(deviceCode)
	if !ours {
		return nil, badRequest(ErrInvalidGrant, "unknown or already used device_code")
	}
	hash := codes.Hash(deviceCode)
	var (
		answer    *oauthError
		delivered *Device // the approved record taken: its sealed tokens, and who approved for the audit
		event     string
	)
	now := s.cfg.Now()
	err := s.cfg.Store.UpdateDevice(r.Context(), userCode, func(d *Device) (Verdict, error) {
		answer, delivered, event = nil, nil, ""
		switch {
		case d == nil || subtle.ConstantTimeCompare(d.CodeHash, hash) != 1:
			// Unknown, delivered or long expired, or its user code has
			// gone to another authorization since: nothing is created.
			answer = badRequest(ErrInvalidGrant, "unknown or already used device_code")
			return Keep, nil
		case d.ClientID != clientID:
			answer = badRequest(ErrInvalidClient, "client_id does not match the device_code")
			return Keep, nil
		case !now.Before(d.ExpiresAt):
			answer = badRequest(ErrExpiredToken, "the device_code has expired; start over")
			event = EventExpired
			return Keep, nil
		case d.Status == Approved:
			delivered = d
			event = EventDelivered
			return Delete, nil // take once: a second poll finds nothing
		case d.Status == Denied:
			desc := "the request was denied"
			if d.Reason != "" {
				desc = d.Reason
			}
			answer = badRequest(ErrAccessDenied, desc)
			return Keep, nil
		}
		sinceLast := now.Sub(d.LastPoll)
		early := !d.LastPoll.IsZero() && sinceLast < d.Interval-pollSlack(d.Interval)
		switch {
		case early && !d.Retried && sinceLast < retryWindow:
			// golang.org/x/oauth2, the most used Go client, sends every
			// failed token request twice in a row (once per client
			// authentication style). Forgive one immediate repeat; the
			// interval still runs from the first poll.
			d.Retried = true
			answer = errPending
		case early:
			d.LastPoll, d.Retried = now, false
			d.Interval += 5 * time.Second // §3.5: for good, for this device
			answer = badRequest(ErrSlowDown, "polling too fast; wait "+d.Interval.String()+" between polls")
			event = EventSlowDown
		default:
			d.LastPoll, d.Retried = now, false
			answer = errPending
		}
		return Save, nil
	})
	if err != nil {
		s.storeFailed("poll", err)
		return nil, unavailable()
	}
	if event != "" {
		s.cfg.Observer.Event(event)
	}
	if answer != nil {
		return nil, answer
	}
	tokens, err := seal.Open(deviceCode, delivered.Sealed)
	if err != nil {
		// The record was approved with tokens for another key: impossible
		// unless the store was tampered with.
		s.log.Error("sealed tokens could not be opened", zap.Error(err))
		return nil, badRequest(ErrInvalidGrant, "the authorization could not be completed; start over")
	}
	s.log.Info("tokens delivered to device", zap.String("client_id", clientID))
	s.audit(AuditTokensDelivered, delivered, delivered.IssuedTo, delivered.ApprovedFrom, zap.String("poll_ip", s.clientIP(r)))
	return tokens, nil
}
