package flow

import (
	"context"
	"crypto/subtle"
	"slices"

	"go.uber.org/zap"
)

// Limited-use codes (draft-ietf-oauth-cross-device-security, "One-Time or
// Limited Use Codes" and "Unique Codes"). A code shown on a device is
// opened by the people in front of it: one network, two when the phone is
// on mobile data. A code a phisher sends to many people is opened from
// many. So every authorization keeps the networks its code was opened
// from, and past Config.CodeNetworks of them it is locked: it can no
// longer be approved, its device hears access_denied, and everyone who
// opens it is told why. A QR image is fetched by the device, not a
// person, and is not counted.

// maxNotedNetworks bounds the networks a record keeps when the lock is
// off (with it on, the record is locked past CodeNetworks of them), so
// that a code opened from a large address block cannot grow its record.
const maxNotedNetworks = 16

// noteOpened adds the network of the person at ip to d's record, when it
// is new there: only then does opening a code write to the store, and
// write the code_opened audit event, so reloading a confirmation page, or
// opening one's own code again and again, adds nothing to either. It
// reports whether the code is locked now, by this opening or an earlier
// one.
func (s *Service) noteOpened(ctx context.Context, d *Device, ip string) (locked bool, err error) {
	network, ok := networkOf(ip, DefaultNetworkBitsV4, DefaultNetworkBitsV6)
	if !ok {
		s.audit(AuditCodeOpened, d, d.IssuedTo, ip) // no network to note it under
		return false, nil
	}
	net := network.String()
	lockOff := s.cfg.CodeNetworks < 0
	if slices.Contains(d.Networks, net) || lockOff && len(d.Networks) >= maxNotedNetworks {
		return false, nil
	}
	var lockedNow *Device
	opened := false
	err = s.cfg.Store.UpdateDevice(ctx, d.UserCode, func(cur *Device) (Verdict, error) {
		locked, lockedNow, opened = false, nil, false // fn may run again on a newer record
		switch {
		case cur == nil || subtle.ConstantTimeCompare(cur.CodeHash, d.CodeHash) != 1:
			return Keep, nil // gone since, or its user code another's: nothing to count
		case cur.Locked():
			locked = true
			return Keep, nil
		case cur.Status != Pending || slices.Contains(cur.Networks, net):
			return Keep, nil
		case lockOff && len(cur.Networks) >= maxNotedNetworks:
			return Keep, nil
		}
		cur.Networks = append(cur.Networks, net)
		if !lockOff && len(cur.Networks) > s.cfg.CodeNetworks {
			cur.Status, cur.Reason = Denied, LockedReason
			locked, lockedNow = true, cur
		} else {
			opened = true
		}
		return Save, nil
	})
	if err != nil {
		return false, err
	}
	if opened {
		s.audit(AuditCodeOpened, d, d.IssuedTo, ip)
	}
	if lockedNow != nil {
		s.cfg.Observer.Event(EventCodeLocked)
		s.audit(AuditCodeLocked, lockedNow, lockedNow.IssuedTo, ip, zap.Strings("networks", lockedNow.Networks))
		s.warnings.warn(s.log, "user code locked: opened from too many networks", zap.String("client_id", lockedNow.ClientID))
	}
	return locked, nil
}
