package flow

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"math"
	"sync/atomic"
	"time"

	"github.com/caddy-device-flow/caddy-device-flow/flow/codes"
)

// secrets holds the server secret, the HMAC key for CSRF tokens, browser
// bindings and state keys. It is only ever read from the store (which
// makes it the first time), never made here: instances sharing a store
// must share the secret. It is read again every secretRefresh, so that if
// the store loses it (a Redis restart without persistence, an eviction)
// and one instance makes a new one, the others follow within that time
// instead of staying apart for good.
type secrets struct {
	mac   atomic.Pointer[[]byte]
	codes atomic.Pointer[codes.DeviceCodes] // made and checked under mac
	next  atomic.Int64                      // when to read the store again, unix nanoseconds
}

// useServerSecret takes the keys from Config.ServerSecret instead of the
// store, for good (loadSecrets never reads the store then), and puts the
// store behind record authentication.
func (s *Service) useServerSecret() {
	key := deriveKey(s.cfg.ServerSecret, "cookies, states and device codes v1")
	dc := codes.NewDeviceCodes(key)
	s.secrets.codes.Store(&dc)
	s.secrets.mac.Store(&key)
	s.secrets.next.Store(math.MaxInt64)
	s.cfg.Store = authenticatedStore{Store: s.cfg.Store, macs: newRecordMACs(deriveKey(s.cfg.ServerSecret, "record integrity v1")),
		forged: s.recordForged}
}

// ServerSecret is the name of the server secret in the store.
const ServerSecret = "mac-v1"

const secretRefresh = time.Minute

// loadSecrets makes sure the secret is loaded and fresh enough. It fails
// only while there is none yet and the store is down; with one in hand, a
// failed refresh keeps it and the next request tries again. Requests do
// not queue behind one another here: Secret gives every caller the same
// value, so concurrent reads are harmless.
func (s *Service) loadSecrets(ctx context.Context) error {
	k := &s.secrets
	old := k.mac.Load()
	now := s.cfg.Now().UnixNano()
	if old != nil && now < k.next.Load() {
		return nil
	}
	key, err := s.cfg.Store.Secret(ctx, ServerSecret, func() ([]byte, error) {
		b := make([]byte, 32)
		_, err := rand.Read(b)
		return b, err
	})
	if err != nil {
		if old != nil {
			return nil
		}
		return err
	}
	if old != nil && !hmac.Equal(*old, key) {
		s.log.Warn("the server secret in the store changed (lost and made again?); forms, sign-ins and device codes begun before must start over")
	}
	if old == nil || !hmac.Equal(*old, key) {
		dc := codes.NewDeviceCodes(key)
		k.codes.Store(&dc)
	}
	k.mac.Store(&key)
	k.next.Store(now + int64(secretRefresh))
	return nil
}

// sum is only reached after loadSecrets succeeded (ServeHTTP sees to it),
// so the key is there.
func (k *secrets) sum(purpose, value string) string {
	m := hmac.New(sha256.New, *k.mac.Load())
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write([]byte(value))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// deviceCodes makes and checks device codes; like sum,
// only reached after loadSecrets succeeded.
func (k *secrets) deviceCodes() codes.DeviceCodes { return *k.codes.Load() }

// sessionMAC authenticates a session cookie's random part.
func (k *secrets) sessionMAC(random string) string { return k.sum("session", random) }

// csrfToken is the token forms must carry for this browser session.
func (k *secrets) csrfToken(session string) string { return k.sum("csrf", session) }

// browserBinding is what a login stores to recognise the browser.
func (k *secrets) browserBinding(session string) string { return k.sum("browser", session) }

// loginKey is the store key of an authorization's login: one per user
// code, so a new Approve replaces the last instead of adding a record.
func (k *secrets) loginKey(userCode string) string { return k.sum("login", userCode) }

// stateHash is what a login keeps of its state: never the state as is.
func (k *secrets) stateHash(state string) string { return k.sum("state", state) }
