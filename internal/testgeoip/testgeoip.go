// Package testgeoip writes small MaxMind-format (.mmdb) databases for
// tests, with MaxMind's own writer library, in the layout of GeoLite2
// City. Tests use only databases they wrote: nothing is downloaded.
package testgeoip

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// Entry is one network of a test database.
type Entry struct {
	Network      string // CIDR
	Country      string // ISO code; "" for none
	CountryNames map[string]string
	CityNames    map[string]string
}

// Documentation networks (RFC 5737, RFC 3849) in two cities of two
// countries, and one network the database does not know.
var (
	Berlin = Entry{Network: "198.51.100.0/24", Country: "DE",
		CountryNames: map[string]string{"en": "Germany", "de": "Deutschland", "fr": "Allemagne"},
		CityNames:    map[string]string{"en": "Berlin", "de": "Berlin", "fr": "Berlin"}}
	BerlinV6 = Entry{Network: "2001:db8:b000::/40", Country: "DE",
		CountryNames: Berlin.CountryNames, CityNames: Berlin.CityNames}
	Paris = Entry{Network: "203.0.113.0/24", Country: "FR",
		CountryNames: map[string]string{"en": "France", "de": "Frankreich", "fr": "France"},
		CityNames:    map[string]string{"en": "Paris", "de": "Paris", "fr": "Paris"}}
	// Unknown is a network none of the entries covers.
	Unknown = "192.0.2.0/24"
)

// Write writes a database of entries to path.
func Write(t testing.TB, path string, entries ...Entry) {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType: "Test-City",
		Description:  map[string]string{"en": "test database"},
		// The documentation ranges the tests use are reserved; the writer
		// leaves them out unless told otherwise.
		IncludeReservedNetworks: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		_, network, err := net.ParseCIDR(e.Network)
		if err != nil {
			t.Fatal(err)
		}
		rec := mmdbtype.Map{}
		if e.Country != "" || e.CountryNames != nil {
			country := mmdbtype.Map{}
			if e.Country != "" {
				country["iso_code"] = mmdbtype.String(e.Country)
			}
			if e.CountryNames != nil {
				country["names"] = names(e.CountryNames)
			}
			rec["country"] = country
		}
		if e.CityNames != nil {
			rec["city"] = mmdbtype.Map{"names": names(e.CityNames)}
		}
		if err := tree.Insert(network, rec); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := tree.WriteTo(f); err != nil {
		t.Fatal(err)
	}
}

// Cities writes Berlin, BerlinV6 and Paris into a new file in dir and
// returns its path.
func Cities(t testing.TB, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "cities.mmdb")
	Write(t, path, Berlin, BerlinV6, Paris)
	return path
}

func names(m map[string]string) mmdbtype.Map {
	out := mmdbtype.Map{}
	for k, v := range m {
		out[mmdbtype.String(k)] = mmdbtype.String(v)
	}
	return out
}
