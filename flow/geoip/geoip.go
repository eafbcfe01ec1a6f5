// Package geoip finds where an address is in a MaxMind-format database
// (.mmdb: GeoLite2 or GeoIP2 City or Country, or another database with
// their layout), for the confirmation page and the proximity check.
package geoip

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"sync"

	"github.com/oschwald/maxminddb-golang/v2"

	"github.com/caddy-device-flow/caddy-device-flow/flow"
)

// DB is an open database. It is safe for concurrent use, also with Close.
type DB struct {
	mu     sync.RWMutex
	reader *maxminddb.Reader // nil once closed
}

var _ flow.Locator = (*DB)(nil)

// Open reads the database at path whole and checks every byte of it, so a
// missing, truncated or corrupt file is an error that names the path, at
// load rather than at a person's request. The file is read into memory,
// not mapped: a database rewritten in place under a running server (rather
// than replaced by a rename, as geoipupdate does) cannot crash it.
func Open(path string) (*DB, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("geoip database %s: %w", path, err)
	}
	r, err := maxminddb.OpenBytes(data)
	if err != nil {
		return nil, fmt.Errorf("geoip database %s is not a MaxMind DB (.mmdb) file: %w", path, err)
	}
	if err := r.Verify(); err != nil {
		return nil, fmt.Errorf("geoip database %s is corrupt: %w", path, err)
	}
	return &DB{reader: r}, nil
}

// record is the part of a City or Country record the pages use.
type record struct {
	City struct {
		Names map[string]string `maxminddb:"names"`
	} `maxminddb:"city"`
	Country           country `maxminddb:"country"`
	RegisteredCountry country `maxminddb:"registered_country"`
}

type country struct {
	ISOCode string            `maxminddb:"iso_code"`
	Names   map[string]string `maxminddb:"names"`
}

// Locate returns the place of a; the zero Place when the database does
// not know it (private and reserved ranges, a record without these
// fields or of another layout) or is closed.
func (db *DB) Locate(a netip.Addr) flow.Place {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.reader == nil || !a.IsValid() {
		return flow.Place{}
	}
	var rec record
	if err := db.reader.Lookup(a.Unmap()).Decode(&rec); err != nil {
		return flow.Place{}
	}
	c := rec.Country
	if c.ISOCode == "" && len(c.Names) == 0 {
		// Some networks (satellite, anycast) have only the country the
		// block is registered in.
		c = rec.RegisteredCountry
	}
	return flow.Place{Country: c.ISOCode, CountryNames: c.Names, CityNames: rec.City.Names}
}

// Close lets go of the database; Locate knows nothing after it.
func (db *DB) Close() error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.reader == nil {
		return nil
	}
	err := db.reader.Close()
	db.reader = nil
	return err
}
