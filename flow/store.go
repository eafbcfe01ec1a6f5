package flow

import (
	"context"
	"crypto/sha256"
	"errors"
	"time"
)

// Store keeps one handler's device authorizations, browser logins,
// counters and server secret. Every method is safe for concurrent use, and
// every method that reads and then writes does so atomically, also across
// processes when the backend is shared (Redis): two polls of one approved
// code never both win.
//
// A Store belongs to one device_flow handler: what it holds is invisible
// to the Store of any other handler, even one on the same database (the
// storage modules give each handler its own key space).
//
// A device authorization is keyed by its normalized user code. The device
// code itself is never stored, only its hash (Device.CodeHash), which the
// caller compares.
type Store interface {
	// CreateDevice stores a new pending authorization under d.UserCode.
	// It fails with ErrUserCodeTaken, storing nothing, when another live
	// authorization holds the same user code, so the caller can draw a
	// new one. Records are kept until d.ExpiresAt plus a grace period,
	// after which the store may drop them by itself.
	CreateDevice(ctx context.Context, d *Device) error

	// DeviceByUserCode returns the authorization stored under the
	// normalized user code, or ErrNotFound. It may have expired (the
	// caller checks ExpiresAt against its own clock).
	DeviceByUserCode(ctx context.Context, userCode string) (*Device, error)

	// UpdateDevice reads the authorization stored under the user code,
	// hands it to fn (nil when there is none) and applies fn's verdict
	// atomically: Keep writes nothing, Save writes the changed record,
	// Delete removes it. fn's error is returned as is, after its verdict
	// was applied.
	//
	// fn always gets the record as stored (every field), and may be
	// called again on a newer one when another writer got in between;
	// only its last call's verdict is applied, so fn must set everything
	// it reports on every call.
	UpdateDevice(ctx context.Context, userCode string, fn func(*Device) (Verdict, error)) error

	// Devices lists the authorizations the store holds for this handler
	// (as DeviceByUserCode would return them, expired ones within their
	// grace period included), a page at a time: the first page is after
	// cursor "", each next one after the DevicePage.Next of the last. A
	// page holds at most limit records, so what a listing takes is
	// bounded by limit, not by the number of records; a backend that
	// reads in batches (Redis's SCAN) may go past limit only by one
	// batch that alone holds more. A record that cannot be decoded does
	// not fail the listing: its user code is in the page's Unreadable.
	// A cursor the store cannot resume from is ErrBadCursor.
	//
	// It is for operators (the admin API), not for the flow, and is no
	// snapshot: a record written meanwhile may or may not be seen; one
	// alive throughout is seen. Whether a record can show on two pages
	// depends on the backend (see its documentation).
	Devices(ctx context.Context, cursor string, limit int) (DevicePage, error)

	// PutLogin stores a browser login (the upstream round trip) under key,
	// until login.ExpiresAt, replacing the login stored under key before.
	PutLogin(ctx context.Context, key string, login *Login) error

	// TakeLogin returns and deletes the login under key in one step if
	// its State is state (compared in constant time); otherwise it
	// returns ErrNotFound and leaves the login as it was, so a replayed or
	// forged callback changes nothing.
	TakeLogin(ctx context.Context, key, state string) (*Login, error)

	// Tally applies counter steps in order (see Tally) and returns the
	// value of each step it applied: a counter's new value after a hit,
	// its current value (0 when there is none) after a read. It stops
	// after a hit that takes its counter past the step's Limit, so it
	// returns fewer values than steps when one did. Each step is atomic
	// on its own, also across instances; the steps of one call are not
	// atomic together.
	Tally(ctx context.Context, steps ...Tally) ([]int64, error)

	// Counters calls fn with every live counter whose key starts with
	// prefix and its value, in no particular order, until fn returns
	// false. Like Devices, it is for operators, not for the flow.
	Counters(ctx context.Context, prefix string, fn func(key string, value int64) bool) error

	// Secret returns the server secret named name, creating it from
	// generate the first time. Every instance sharing the store gets the
	// same value, so cookies, CSRF tokens and device codes work across
	// instances.
	Secret(ctx context.Context, name string, generate func() ([]byte, error)) ([]byte, error)
}

// DevicePage is one page of Store.Devices.
type DevicePage struct {
	Devices []*Device
	// Unreadable holds the user codes (as in their keys) of the records
	// of this page that could not be decoded.
	Unreadable []string
	// Next is the cursor of the next page; "" when none remains.
	Next string
}

// Tally is one step of Store.Tally on the counter Key.
type Tally struct {
	Key string
	// TTL above zero adds one to the counter; a new counter starts at
	// zero and vanishes TTL after its first hit (callers build fixed
	// windows by putting the window's number into the key). TTL zero
	// only reads the counter.
	TTL time.Duration
	// Limit, when above zero, ends the call after a hit that takes the
	// counter past it: the steps after it are neither applied nor read.
	Limit int64
}

// Hit is the step that adds one to the counter key (see Tally.TTL).
func Hit(key string, ttl time.Duration) Tally { return Tally{Key: key, TTL: ttl} }

// Read is the step that reads the counter key.
func Read(key string) Tally { return Tally{Key: key} }

// Verdict is what an UpdateDevice callback decides to do with the record.
type Verdict int

const (
	Keep Verdict = iota
	Save
	Delete
)

var (
	// ErrNotFound: no live record under that key.
	ErrNotFound = errors.New("not found")
	// ErrUserCodeTaken: the user code belongs to another live authorization.
	ErrUserCodeTaken = errors.New("user code already in use")
	// ErrBadCursor: Store.Devices cannot resume from the cursor given
	// (not one it made, or what it listed has changed shape: list again
	// from the first page).
	ErrBadCursor = errors.New("listing cursor not valid: list again from the first page")
	// ErrUnavailable wraps backend failures (Redis down, disk full); the
	// endpoints answer 503 with Retry-After.
	ErrUnavailable = errors.New("store unavailable")
)

// Status is where an authorization stands.
type Status uint8

const (
	Pending Status = iota
	Approved
	Denied
)

func (s Status) String() string {
	switch s {
	case Pending:
		return "pending"
	case Approved:
		return "approved"
	case Denied:
		return "denied"
	}
	return "unknown"
}

// Device is one device authorization (RFC 8628 §3.2), as stored.
type Device struct {
	UserCode  string        `json:"uc"`  // normalized (upper case, no separators); the record's key
	CodeHash  []byte        `json:"ch"`  // codes.Hash of the device code: the code itself is never stored
	ClientID  string        `json:"cid"` // the client that asked; polls must match
	Scope     string        `json:"scope,omitempty"`
	Status    Status        `json:"st"`
	CreatedAt time.Time     `json:"ca"`
	ExpiresAt time.Time     `json:"ea"`
	Interval  time.Duration `json:"iv"` // grows by 5 s with every slow_down
	LastPoll  time.Time     `json:"lp,omitzero"`
	// Retried: the last early poll was forgiven as a client's immediate
	// retry (see poll); the next early one is slow_down.
	Retried bool   `json:"rt,omitempty"`
	SealKey []byte `json:"pk"`            // X25519 public key derived from the device code at issue
	Sealed  []byte `json:"tok,omitempty"` // the upstream token response, sealed to SealKey
	Reason  string `json:"why,omitempty"` // why it was denied, for the device's error_description
	// IssuedTo is the address that asked for the code, for operators
	// (the admin API); the flow never reads it.
	IssuedTo string `json:"ip,omitempty"`
	// Networks are the networks (networkOf) of the browsers that opened
	// the code, each once, in the order they first did: the lock of
	// Config.CodeNetworks counts them.
	Networks []string `json:"nets,omitempty"`
	// Sub is the upstream's subject of the person who approved (the ID
	// token's sub), and ApprovedFrom their address: both only label the
	// audit event of the delivery.
	Sub          string `json:"sub,omitempty"`
	ApprovedFrom string `json:"by,omitempty"`
	// MAC authenticates the record under a key from the configured
	// server secret (see integrity.go); nil without one.
	MAC []byte `json:"mac,omitempty"`
}

// LockedReason is the Reason of a code locked for being opened from too
// many networks; the device gets it as error_description.
const LockedReason = "the user code was opened from too many networks and was locked; if this device is yours, request a new code"

// Locked reports whether d was locked for being opened from too many
// networks.
func (d *Device) Locked() bool { return d.Status == Denied && d.Reason == LockedReason }

// Login is one trip of a person's browser to the upstream and back. An
// authorization has at most one in progress: it is stored under a key
// made from the user code, so a new Approve replaces the last.
type Login struct {
	UserCode  string    `json:"uc"`   // the authorization it is for
	CodeHash  []byte    `json:"ch"`   // and that authorization's Device.CodeHash
	State     string    `json:"sh"`   // HMAC of the state: the callback must bring that state
	Verifier  string    `json:"pkce"` // the PKCE code_verifier, sealed under the state (seal.Verifier)
	Browser   string    `json:"b"`    // HMAC of the browser's session
	ExpiresAt time.Time `json:"ea"`
	MAC       []byte    `json:"mac,omitempty"` // as Device.MAC
}

// NamespaceID is the short, fixed-size name of a handler's namespace (the
// string a storage module's Store is given): the first 8 bytes of its
// SHA-256. Stores key the namespace's records by it; the admin API names
// a handler without a name by it, in hex.
func NamespaceID(namespace string) [8]byte {
	sum := sha256.Sum256([]byte(namespace))
	return [8]byte(sum[:8])
}
