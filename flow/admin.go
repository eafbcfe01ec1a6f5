package flow

import (
	"context"
	"slices"
	"time"

	"go.uber.org/zap"
)

// The operator's view of a handler (the admin API): the codes alive now,
// and denying one. What it shows leaves out every secret a record holds:
// the device code's hash, the sealing key and the sealed tokens. The
// address a code was issued to is not stored, so it cannot be shown.

// CodeInfo is what an operator sees of one live device authorization.
type CodeInfo struct {
	UserCode   string    `json:"user_code"` // as people type it (XXXX-XXXX)
	ClientID   string    `json:"client_id"`
	ClientName string    `json:"client_name,omitempty"` // from the configuration
	Scope      string    `json:"scope,omitempty"`
	Status     string    `json:"status"` // pending, approved or denied
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	Polled     bool      `json:"polled"` // the device has polled at least once
	LastPoll   time.Time `json:"last_poll,omitzero"`
}

// OperatorReason is the error_description a device gets for a code an
// operator denied.
const OperatorReason = "denied by the server's operator"

// Codes lists the authorizations that have not expired, oldest first.
func (s *Service) Codes(ctx context.Context) ([]CodeInfo, error) {
	now := s.cfg.Now()
	var out []CodeInfo
	err := s.cfg.Store.Devices(ctx, func(d *Device) bool {
		if now.Before(d.ExpiresAt) {
			out = append(out, s.codeInfo(d))
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b CodeInfo) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

// codeInfo is the operator's view of d.
func (s *Service) codeInfo(d *Device) CodeInfo {
	return CodeInfo{
		UserCode:   s.cfg.UserCode.Display(d.UserCode),
		ClientID:   d.ClientID,
		ClientName: s.cfg.Clients[d.ClientID].Name,
		Scope:      d.Scope,
		Status:     d.Status.String(),
		CreatedAt:  d.CreatedAt,
		ExpiresAt:  d.ExpiresAt,
		Polled:     !d.LastPoll.IsZero(),
		LastPoll:   d.LastPoll,
	}
}

// DenyCode denies the live authorization under the user code (as typed:
// it is normalized), pending or approved: its device is answered
// access_denied, and tokens waiting for it are destroyed. Denying a
// denied code changes nothing. It returns the code as it now stands, or
// ErrNotFound when no live code has that user code.
func (s *Service) DenyCode(ctx context.Context, userCode string) (CodeInfo, error) {
	normalized := s.cfg.UserCode.Normalize(userCode)
	if normalized == "" {
		return CodeInfo{}, ErrNotFound
	}
	now := s.cfg.Now()
	var info CodeInfo
	changed := false
	err := s.cfg.Store.UpdateDevice(ctx, normalized, func(d *Device) (Verdict, error) {
		changed = false
		if d == nil || !now.Before(d.ExpiresAt) {
			return Keep, ErrNotFound
		}
		if d.Status != Denied {
			d.Status, d.Sealed, d.Reason, changed = Denied, nil, OperatorReason, true
		}
		info = s.codeInfo(d)
		if !changed {
			return Keep, nil
		}
		return Save, nil
	})
	if err != nil {
		return CodeInfo{}, err
	}
	if changed {
		s.cfg.Observer.Event(EventDenied)
		s.log.Info("an operator denied a device code", zap.String("client_id", info.ClientID))
	}
	return info, nil
}
