package deviceflow

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/dgraph-io/badger/v4"
	"github.com/dustin/go-humanize"
	"go.uber.org/zap"

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

	// MinFree is the free space, in bytes, that the folder's filesystem
	// must keep: below it, new device codes are refused (503 with
	// Retry-After) while codes already issued complete their flow, and
	// below a quarter of it every write is refused, so that Badger never
	// meets a full disk (which would crash Caddy). Checked every second;
	// the refusal lifts by itself. It must cover what Badger writes
	// besides new codes: memtables, compactions. Default: 64 MiB.
	MinFree int64 `json:"min_free,omitempty"`

	dir string // the folder, absolute
	key string
	db  *badgerstore.DB
}

// bytesPerLiveCode is the disk a live code takes, measured with
// bench/livecodes (docs/operations.md, "Disk and memory"); it sizes the
// warning about max_live_codes.
const bytesPerLiveCode = 350

// CaddyModule returns the Caddy module information.
func (BadgerStorage) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.device_flow.storage.badger",
		New: func() caddy.Module { return new(BadgerStorage) },
	}
}

// Provision opens the database, or takes the one already open at that
// path. Under `caddy validate` it only checks the folder: the database
// may be open in the Caddy that runs this config, and validating must not
// leave a folder behind.
func (b *BadgerStorage) Provision(ctx caddy.Context) error {
	dir := b.Dir
	if dir == "" {
		dir = filepath.Join(caddy.AppDataDir(), "device_flow")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("badger storage dir %q: %v", dir, err)
	}
	b.dir = abs
	b.MinFree = cmp.Or(b.MinFree, badgerstore.DefaultMinFree)
	logger := ctx.Logger()
	if validating() {
		return b.provisionForValidate(ctx, logger, abs)
	}
	val, _, err := badgerPool.LoadOrNew(abs, func() (caddy.Destructor, error) {
		if err := os.MkdirAll(abs, 0o700); err != nil {
			return nil, fmt.Errorf("creating the badger storage folder: %v", err)
		}
		db, err := badgerstore.Open(badgerstore.Options{Dir: abs, Logger: logger.Named("badger"), MinFree: b.MinFree, OnDiskCheck: diskMetrics(abs)})
		if err != nil {
			if strings.Contains(err.Error(), "Cannot acquire directory lock") || errors.Is(err, badger.ErrTruncateNeeded) {
				err = fmt.Errorf("%w: the device_flow database %s is in use by another process; this is usually another running Caddy: use 'caddy reload' to change its config, or give this one another 'storage badger <dir>'", err, abs)
			}
			return nil, err
		}
		return badgerDestructor{db, abs}, nil
	})
	if err != nil {
		return err
	}
	b.key, b.db = abs, val.(badgerDestructor).DB
	b.db.SetMinFree(b.MinFree) // a reload's new setting
	registerStorageMetrics(ctx, logger)
	b.warnIfTooSmall(ctx, logger, abs, abs)
	return nil
}

// provisionForValidate checks that the folder exists or can be made, and
// whether the codes fit, and gives the handler a store in memory.
func (b *BadgerStorage) provisionForValidate(ctx caddy.Context, logger *zap.Logger, abs string) error {
	existing, err := nearestFolder(abs)
	if err != nil {
		return fmt.Errorf("badger storage folder %s: %v", abs, err)
	}
	b.warnIfTooSmall(ctx, logger, abs, existing)
	b.db, err = badgerstore.Open(badgerstore.Options{InMemory: true, Logger: logger.Named("badger")})
	return err
}

// validating reports whether this provisioning is caddy.Validate's
// (`caddy validate`, `caddy adapt --validate`), which provisions a config
// only to throw it away. Caddy 2.11 tells modules nothing of it, so the
// call stack is asked; provisioning happens on Validate's goroutine.
func validating() bool {
	pcs := make([]uintptr, 512)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(2, pcs)])
	for {
		f, more := frames.Next()
		if f.Function == "github.com/caddyserver/caddy/v2.Validate" {
			return true
		}
		if !more {
			return false
		}
	}
}

// nearestFolder is dir if it exists, else the folder above it that
// exists, in which it would be made.
func nearestFolder(dir string) (string, error) {
	for {
		info, err := os.Stat(dir)
		if err == nil {
			if !info.IsDir() {
				return "", fmt.Errorf("%s is not a folder", dir)
			}
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if !errors.Is(err, fs.ErrNotExist) || parent == dir {
			return "", err
		}
		dir = parent
	}
}

// warnIfTooSmall logs a warning when the handler's max_live_codes cannot
// fit beside min_free on the filesystem of existing (the folder, or the
// folder it will be made in): room is the free space plus what the
// database already takes, live codes included.
func (b *BadgerStorage) warnIfTooSmall(ctx caddy.Context, logger *zap.Logger, dir, existing string) {
	liveCodes := liveCodeCap(ctx)
	if liveCodes == 0 {
		return
	}
	free, err := badgerstore.FreeSpace(existing)
	if err != nil {
		return
	}
	room := int64(free) + badgerstore.DiskUsage(dir) - b.MinFree
	need := int64(flow.LiveCodeCeiling(liveCodes)) * bytesPerLiveCode // what a flood past the cap may fill
	if need > room {
		logger.Warn("max_live_codes will not fit on the Badger folder's filesystem: new device codes will be refused when it runs short, before the cap is reached; lower max_live_codes or give the folder more space (docs/operations.md, \"Disk and memory\")",
			zap.String("dir", dir), zap.Int("max_live_codes", liveCodes),
			zap.String("needs", humanize.IBytes(uint64(need))), zap.String("room", humanize.IBytes(uint64(max(room, 0)))),
			zap.String("min_free", humanize.IBytes(uint64(b.MinFree))))
	}
}

// liveCodeCap is the max_live_codes of the handler whose storage this is
// (the module that loads it); 0 when its limits are off.
func liveCodeCap(ctx caddy.Context) int {
	mods := ctx.Modules()
	if len(mods) < 2 {
		return 0
	}
	h, ok := mods[len(mods)-2].(*Handler)
	switch {
	case !ok:
		return 0
	case h.Limits == nil:
		return flow.DefaultLiveCodes
	case h.Limits.Off:
		return 0
	}
	return cmp.Or(h.Limits.MaxLiveCodes, flow.DefaultLiveCodes)
}

// storeIdentity names where the records are, for the admin registry
// (admin_registry.go).
func (b *BadgerStorage) storeIdentity() string { return "badger " + b.dir }

// Store returns one handler's store in the database.
func (b *BadgerStorage) Store(namespace string) flow.Store { return b.db.Store(namespace) }

// Cleanup lets go of the database; the last user closes it. The store in
// memory of a validation is closed at once.
func (b *BadgerStorage) Cleanup() error {
	if b.key == "" {
		if b.db != nil {
			return b.db.Close()
		}
		return nil
	}
	_, err := badgerPool.Delete(b.key)
	return err
}

type badgerDestructor struct {
	*badgerstore.DB
	dir string
}

func (d badgerDestructor) Destruct() error {
	forgetDiskMetrics(d.dir)
	return d.DB.Close()
}

// UnmarshalCaddyfile reads the storage line of device_flow:
//
//	storage badger [<dir>] {
//		min_free <size>   # e.g. 64MiB, 1GB; default 64MiB
//	}
func (b *BadgerStorage) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // "badger"
	if d.NextArg() {
		b.Dir = d.Val()
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "min_free":
			if !d.NextArg() {
				return d.ArgErr()
			}
			size, err := humanize.ParseBytes(d.Val())
			if err != nil || size == 0 || size > 1<<62 {
				return d.Errf("min_free must be a size such as 64MiB or 1GB, not %q", d.Val())
			}
			b.MinFree = int64(size)
			if d.NextArg() {
				return d.ArgErr()
			}
		default:
			// `dir` in the block would otherwise look as if it counted.
			return d.Errf("unrecognized subdirective %s of storage badger (the folder goes on the line: storage badger <dir>)", d.Val())
		}
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
