package deviceflow

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/dgraph-io/badger/v4"
	"github.com/dustin/go-humanize"
	"github.com/prometheus/client_golang/prometheus"
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

	dir      string // the folder, absolute
	existing string // dir, or the folder above it that it will be made in
	logger   *zap.Logger
	stores   []namedStore // the handlers', opened by open
	key      string       // badgerPool's, once open
}

// namedStore is a handler's store, waiting for the database.
type namedStore struct {
	*startedStore
	namespace string
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

// Provision checks the folder (that it exists or can be made); the database opens when the config starts (starter.go),
// so that `caddy validate`, which never starts a config, neither makes the
// folder nor needs the lock of the Caddy that runs it.
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
	b.logger = ctx.Logger()
	if b.existing, err = nearestFolder(abs); err != nil {
		return fmt.Errorf("badger storage folder %s: %v", abs, err)
	}
	registerStorageMetrics(ctx, b.logger)
	return onStart(ctx, b.open)
}

// open opens the database, or takes the one already open at that path,
// and gives the handlers' stores their database.
func (b *BadgerStorage) open() error {
	abs, logger := b.dir, b.logger
	val, _, err := badgerPool.LoadOrNew(abs, func() (caddy.Destructor, error) {
		if err := os.MkdirAll(abs, 0o700); err != nil {
			return nil, fmt.Errorf("creating the badger storage folder: %v", err)
		}
		db, err := badgerstore.Open(badgerstore.Options{Dir: abs, Logger: logger.Named("badger"), MinFree: b.MinFree, OnDiskCheck: badgerMetrics().feed(abs)})
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
	b.key = abs
	db := val.(badgerDestructor).DB
	db.SetMinFree(b.MinFree) // a reload's new setting
	for _, s := range b.stores {
		s.set(db.Store(s.namespace))
	}
	return nil
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

// expectLiveCodes logs a warning when the handler's max_live_codes cannot
// fit beside min_free on the folder's filesystem (or that of the folder it
// will be made in): room is the free space plus what the database already
// takes, live codes included. The handler calls it once it has loaded its
// storage, also under `caddy validate`.
func (b *BadgerStorage) expectLiveCodes(liveCodes int) {
	if liveCodes == 0 {
		return
	}
	free, err := badgerstore.FreeSpace(b.existing)
	if err != nil {
		return
	}
	room := int64(free) + badgerstore.DiskUsage(b.dir) - b.MinFree
	need := int64(flow.LiveCodeCeiling(liveCodes)) * bytesPerLiveCode // what a flood past the cap may fill
	if need > room {
		b.logger.Warn("max_live_codes will not fit on the Badger folder's filesystem: new device codes will be refused when it runs short, before the cap is reached; lower max_live_codes or give the folder more space (docs/operations.md, \"Disk and memory\")",
			zap.String("dir", b.dir), zap.Int("max_live_codes", liveCodes),
			zap.String("needs", humanize.IBytes(uint64(need))), zap.String("room", humanize.IBytes(uint64(max(room, 0)))),
			zap.String("min_free", humanize.IBytes(uint64(b.MinFree))))
	}
}

// storeIdentity names where the records are, for the check that two
// handlers on one store are apart (claimIdentity, namespace.go).
func (b *BadgerStorage) storeIdentity() string { return "badger " + b.dir }

// Store returns one handler's store in the database, usable once the
// config starts.
func (b *BadgerStorage) Store(namespace string) flow.Store {
	s := namedStore{newStartedStore(), namespace}
	b.stores = append(b.stores, s)
	return s.startedStore
}

// Cleanup lets go of the database; the last user closes it. A config that
// never started (validated, or failed) opened none: its stores answer
// unavailable.
func (b *BadgerStorage) Cleanup() error {
	for _, s := range b.stores {
		s.set(nil)
	}
	if b.key == "" {
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
	badgerMetrics().forget(d.dir)
	return d.DB.Close()
}

// badgerMetrics are the gauges of the free-space guard, per database
// folder (one process may hold several). Like the handler's collectors
// (metrics.go), they are made once per process.
var badgerMetrics = sync.OnceValue(func() badgerGauges {
	const ns, sub = "caddy", "device_flow"
	return badgerGauges{
		low: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns,
			Subsystem: sub,
			Name:      "badger_disk_low",
			Help:      "1 while the Badger folder's filesystem has less than min_free left and new device codes are refused, else 0.",
		}, []string{"dir"}),
		free: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns,
			Subsystem: sub,
			Name:      "badger_disk_free_bytes",
			Help:      "Free space on the Badger folder's filesystem at the last check (every second).",
		}, []string{"dir"}),
	}
})

type badgerGauges struct{ low, free *prometheus.GaugeVec }

func (g badgerGauges) collectors() []prometheus.Collector {
	return []prometheus.Collector{g.low, g.free}
}

// feed is the badgerstore.Options.OnDiskCheck that sets the gauges of the
// folder dir.
func (g badgerGauges) feed(dir string) func(badgerstore.DiskState) {
	low, free := g.low.WithLabelValues(dir), g.free.WithLabelValues(dir)
	return func(st badgerstore.DiskState) {
		free.Set(float64(st.Free))
		if st.Low {
			low.Set(1)
		} else {
			low.Set(0)
		}
	}
}

// forget drops the gauges of a database that is closed.
func (g badgerGauges) forget(dir string) {
	g.low.DeleteLabelValues(dir)
	g.free.DeleteLabelValues(dir)
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
	_ liveCodesExpecter     = (*BadgerStorage)(nil)
	_ caddyfile.Unmarshaler = (*BadgerStorage)(nil)
)
