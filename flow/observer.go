package flow

import "time"

// Observer hears what happens, for metrics. Implementations must be cheap
// and safe for concurrent use.
type Observer interface {
	// Event counts one occurrence: see the Event* names.
	Event(name string)
	// Upstream reports one call to the upstream: op is "token" or
	// "refresh", outcome "ok", "error" (it answered an error) or "failed"
	// (no usable answer).
	Upstream(op, outcome string, took time.Duration)
}

// Event names.
const (
	EventCodeIssued   = "code_issued"
	EventApproved     = "approved"
	EventDenied       = "denied"
	EventExpired      = "expired"
	EventSlowDown     = "slow_down"
	EventDelivered    = "delivered"
	EventGuessLimited = "guess_limited"
	EventWrongCode    = "wrong_code"
	EventIssueLimited = "issue_limited"
	EventIssueRefused = "issue_refused" // a device outside issue_from
	EventCodeLocked   = "code_locked"   // opened from more than code_networks networks
	// EventRecordForged: a stored record failed its MAC (server_secret).
	EventRecordForged = "record_forged"
	// An Approve from another network than the device's (proximity.go):
	// let through after the warning (proximity warn), or refused
	// (proximity require).
	EventProximityWarned  = "proximity_warned"
	EventProximityRefused = "proximity_refused"
	EventApproveLimited   = "approve_limited"
	EventRefreshLimited   = "refresh_limited"
)

// Events are every Event* name, for an Observer that shows each from the
// start (a metric at 0).
func Events() []string {
	return []string{
		EventCodeIssued, EventApproved, EventDenied, EventExpired, EventSlowDown,
		EventDelivered, EventGuessLimited, EventWrongCode, EventIssueLimited,
		EventProximityWarned, EventProximityRefused, EventApproveLimited,
		EventRefreshLimited, EventIssueRefused, EventCodeLocked, EventRecordForged,
	}
}

type nopObserver struct{}

func (nopObserver) Event(string)                           {}
func (nopObserver) Upstream(string, string, time.Duration) {}
