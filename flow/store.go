package flow

import (
	"context"
	"errors"
	"time"
)

// Store keeps device authorizations, browser logins, counters and server
// secrets. Every method is safe for concurrent use, and every method that
// reads and then writes does so atomically, also across processes when the
// backend is shared (Redis): two polls of one approved code never both win.
//
// Keys handed to a Store are opaque, printable and short; they never contain
// a device code, only its hash. A device's ID made by UserCodeID (every
// code this version issues) holds the record's user code, so a store may
// keep the record under its user code alone (badgerstore does), as long as
// it answers only to the whole ID; CreateDevice may refuse a record whose
// UserCodeID names another user code than its own.
type Store interface {
	// CreateDevice stores a new pending authorization. It fails with
	// ErrUserCodeTaken, storing nothing, when another live authorization
	// holds the same user code, so the caller can draw a new one.
	// Records are kept until rec.ExpiresAt plus a grace period, after which
	// the store may drop them by itself.
	CreateDevice(ctx context.Context, rec *Device) error

	// DeviceByUserCode returns the live authorization that holds the
	// normalized user code, or ErrNotFound.
	DeviceByUserCode(ctx context.Context, userCode string) (*Device, error)

	// UpdateDevice reads the authorization with the given ID, hands a copy
	// to fn and applies fn's verdict atomically: Keep writes nothing, Save
	// writes the changed record, Delete removes it (and its user code).
	// A missing record is passed to fn as nil. fn's error is returned as
	// is, after fn's verdict was applied.
	//
	// fn may be called more than once, and only its last call's verdict
	// is applied, so fn must set everything it reports on every call. A
	// store calls it again on the newer record when another writer got
	// in between; and a store that keeps pending polls in memory
	// (badgerstore's poll clock) may first call it on what it keeps of a
	// pending record: ID, ClientID, Scope, Status, Interval, LastPoll and
	// Retried as stored, ExpiresAt rounded down to the second, SealKey a
	// non-nil stand-in, the rest empty. That call stands only if fn saved
	// a change to LastPoll or Retried alone (or nothing); any other
	// verdict is decided again on the record itself.
	UpdateDevice(ctx context.Context, id string, fn func(*Device) (Verdict, error)) error

	// PutLogin stores a browser login (the upstream round trip) under key,
	// until expires.
	PutLogin(ctx context.Context, key string, login *Login) error

	// TakeLogin returns and deletes the login under key in one step, so a
	// replayed callback finds nothing: ErrNotFound.
	TakeLogin(ctx context.Context, key string) (*Login, error)

	// Hit adds one to the counter key and returns its new value. A new
	// counter starts at zero and vanishes ttl after its first hit; callers
	// build fixed windows by putting the window's number into the key.
	Hit(ctx context.Context, key string, ttl time.Duration) (int64, error)

	// Count returns the counter's current value (0 when there is none)
	// without changing it.
	Count(ctx context.Context, key string) (int64, error)

	// Secret returns the server secret named name, creating it from
	// generate the first time. Every instance sharing the store gets the
	// same value, so cookies and CSRF tokens work across instances.
	Secret(ctx context.Context, name string, generate func() ([]byte, error)) ([]byte, error)
}

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
	ID        string        `json:"id"`  // UserCodeID (DeviceID for codes of earlier versions); the device code itself is never stored
	UserCode  string        `json:"uc"`  // normalized: upper case, no separators
	ClientID  string        `json:"cid"` // the client that asked; polls must match
	Scope     string        `json:"scope,omitempty"`
	Status    Status        `json:"st"`
	CreatedAt time.Time     `json:"ca"`
	ExpiresAt time.Time     `json:"ea"`
	Interval  time.Duration `json:"iv"` // grows by 5 s with every slow_down
	LastPoll  time.Time     `json:"lp,omitempty"`
	// Retried: the last early poll was forgiven as a client's immediate
	// retry (see poll); the next early one is slow_down.
	Retried bool   `json:"rt,omitempty"`
	SealKey []byte `json:"pk"`            // X25519 public key derived from the device code
	Sealed  []byte `json:"tok,omitempty"` // the upstream token response, sealed to SealKey
	Reason  string `json:"why,omitempty"` // why it was denied, for the device's error_description
}

// Login is one trip of a person's browser to the upstream and back.
type Login struct {
	DeviceID  string    `json:"did"`
	Verifier  string    `json:"pkce"` // the PKCE code_verifier, sealed under the state (see verifier_seal.go)
	Browser   string    `json:"b"`    // hash of the browser's session cookie
	ExpiresAt time.Time `json:"ea"`
}
