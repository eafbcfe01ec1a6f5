package deviceflow

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/dgraph-io/badger/v4"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
	"github.com/caddy-device-flow/caddy-device-flow/storage/badgerstore"
)

func init() {
	caddy.RegisterModule(BadgerStorage{})
}

// badgerPool holds each Badger database open across config reloads: a
// reload provisions the new config (which finds the database in the pool)
// before it cleans up the old one, so pending codes never blink out.
var badgerPool = caddy.NewUsagePool()

// BadgerStorage keeps codes in an embedded Badger database, the default.
// Several device_flow handlers may share one folder: each has its own
// records in it (see Handler.Name).
type BadgerStorage struct {
	// Dir is the database folder. Default: "device_flow" in Caddy's data
	// directory.
	Dir string `json:"dir,omitempty"`

	key string
	db  *badgerstore.DB
}

// CaddyModule returns the Caddy module information.
func (BadgerStorage) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.device_flow.storage.badger",
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
	logger := ctx.Logger()
	val, _, err := badgerPool.LoadOrNew(abs, func() (caddy.Destructor, error) {
		if err := os.MkdirAll(abs, 0o700); err != nil {
			return nil, fmt.Errorf("creating the badger storage folder: %v", err)
		}
		db, err := badgerstore.Open(badgerstore.Options{Dir: abs, Logger: logger.Named("badger")})
		if err != nil {
			if strings.Contains(err.Error(), "Cannot acquire directory lock") || errors.Is(err, badger.ErrTruncateNeeded) {
				err = fmt.Errorf("%w: the device_flow database %s is in use by another process; this is usually another running Caddy: use 'caddy reload' to change its config, or give this one another 'storage badger <dir>'", err, abs)
			}
			return nil, err
		}
		return badgerDestructor{db}, nil
	})
	if err != nil {
		return err
	}
	b.key, b.db = abs, val.(badgerDestructor).DB
	return nil
}

// Store returns one handler's store in the database.
func (b *BadgerStorage) Store(namespace string) flow.Store { return b.db.Store(namespace) }

// Cleanup lets go of the database; the last user closes it.
func (b *BadgerStorage) Cleanup() error {
	if b.key == "" {
		return nil
	}
	_, err := badgerPool.Delete(b.key)
	return err
}

type badgerDestructor struct{ *badgerstore.DB }

func (d badgerDestructor) Destruct() error { return d.DB.Close() }

// UnmarshalCaddyfile reads the storage line of device_flow:
//
//	storage badger [<dir>]
func (b *BadgerStorage) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // "badger"
	if d.NextArg() {
		b.Dir = d.Val()
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	// A block would be ignored, and `dir` in it silently with it.
	if d.NextBlock(0) {
		return d.Errf("storage badger takes no block; give the folder on the line: storage badger <dir>")
	}
	return nil
}

// Interface guards.
var (
	_ caddy.Provisioner     = (*BadgerStorage)(nil)
	_ caddy.CleanerUpper    = (*BadgerStorage)(nil)
	_ StorageProvider       = (*BadgerStorage)(nil)
	_ caddyfile.Unmarshaler = (*BadgerStorage)(nil)
)
