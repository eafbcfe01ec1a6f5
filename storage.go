package deviceflow

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/dgraph-io/badger/v4"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
	"github.com/caddy-device-flow/caddy-device-flow/storage/badgerstore"
)

func init() {
	caddy.RegisterModule(BadgerStorage{})
}

// StorageProvider is a guest module in the device_flow.storage namespace:
// it opens its store in Provision and lets go of it in Cleanup.
type StorageProvider interface {
	Store() flow.Store
}

// badgerPool holds each Badger database open across config reloads: a
// reload provisions the new config (which finds the database in the pool)
// before it cleans up the old one, so pending codes never blink out.
var badgerPool = caddy.NewUsagePool()

// BadgerStorage keeps codes in an embedded Badger database, the default.
type BadgerStorage struct {
	// Dir is the database folder; default: "device_flow" in Caddy's data
	// directory.
	Dir string `json:"dir,omitempty"`

	key   string
	store *badgerstore.Store
}

// CaddyModule returns the Caddy module information.
func (BadgerStorage) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "device_flow.storage.badger",
		New: func() caddy.Module { return new(BadgerStorage) },
	}
}

// Provision opens the database, or takes the one already open at that path.
func (b *BadgerStorage) Provision(ctx caddy.Context) error {
	dir := b.Dir
	if dir == "" {
		dir = filepath.Join(caddy.AppDataDir(), "device_flow")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("badger storage dir %q: %v", dir, err)
	}
	b.key = abs
	logger := ctx.Logger()
	val, _, err := badgerPool.LoadOrNew(abs, func() (caddy.Destructor, error) {
		if err := os.MkdirAll(abs, 0o700); err != nil {
			return nil, fmt.Errorf("creating the badger storage folder: %v", err)
		}
		st, err := badgerstore.Open(badgerstore.Options{Dir: abs, Logger: logger.Named("badger")})
		if err != nil {
			if strings.Contains(err.Error(), "Cannot acquire directory lock") || errors.Is(err, badger.ErrTruncateNeeded) {
				err = fmt.Errorf("%w: the device_flow database %s is in use by another process; this is usually another running Caddy: use 'caddy reload' to change its config, or give this one another 'storage badger <dir>'", err, abs)
			}
			return nil, err
		}
		return badgerDestructor{st}, nil
	})
	if err != nil {
		return err
	}
	b.store = val.(badgerDestructor).Store
	return nil
}

// Store returns the open store.
func (b *BadgerStorage) Store() flow.Store { return b.store }

// Cleanup lets go of the database; the last user closes it.
func (b *BadgerStorage) Cleanup() error {
	if b.key == "" {
		return nil
	}
	_, err := badgerPool.Delete(b.key)
	return err
}

type badgerDestructor struct{ *badgerstore.Store }

func (d badgerDestructor) Destruct() error { return d.Store.Close() }

var (
	_ caddy.Provisioner  = (*BadgerStorage)(nil)
	_ caddy.CleanerUpper = (*BadgerStorage)(nil)
	_ StorageProvider    = (*BadgerStorage)(nil)
)
