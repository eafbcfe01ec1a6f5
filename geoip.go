package deviceflow

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
	"github.com/caddy-device-flow/caddy-device-flow/flow/geoip"
)

// geoipPool shares open GeoIP databases between handlers and across
// reloads, like acmeserver's database pool: a reload that keeps the same
// file reads and verifies it no more, and the last handler to let go of
// it closes it.
var geoipPool = caddy.NewUsagePool()

// geoipDB is a pooled database.
type geoipDB struct{ *geoip.DB }

func (db geoipDB) Destruct() error { return db.Close() }

// openGeoIP opens the database at path, or takes the one already open.
// The key holds the file's size and modification time, so a file replaced
// since (a new month's GeoLite2) is read anew at the next reload. Release
// the key with geoipPool.Delete.
func openGeoIP(path string) (flow.Locator, string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, "", fmt.Errorf("geoip database %s: %v", path, err)
	}
	key := abs
	if fi, err := os.Stat(abs); err == nil {
		key = fmt.Sprintf("%s|%d|%d", abs, fi.Size(), fi.ModTime().UnixNano())
	}
	val, _, err := geoipPool.LoadOrNew(key, func() (caddy.Destructor, error) {
		db, err := geoip.Open(abs)
		if err != nil {
			return nil, err
		}
		return geoipDB{db}, nil
	})
	if err != nil {
		return nil, "", err
	}
	return val.(geoipDB).DB, key, nil
}
