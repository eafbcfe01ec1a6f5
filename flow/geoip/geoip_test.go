package geoip

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/caddy-device-flow/caddy-device-flow/internal/testgeoip"
)

func TestLocate(t *testing.T) {
	db, err := Open(testgeoip.Cities(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tests := []struct {
		addr, country, city, countryDE string
	}{
		{"198.51.100.7", "DE", "Berlin", "Deutschland"},
		{"::ffff:198.51.100.7", "DE", "Berlin", "Deutschland"}, // IPv4-mapped
		{"2001:db8:b000:1::5", "DE", "Berlin", "Deutschland"},
		{"203.0.113.200", "FR", "Paris", "Frankreich"},
		{"192.0.2.1", "", "", ""}, // not in the database
		{"10.0.0.1", "", "", ""},  // private
		{"::1", "", "", ""},
	}
	for _, tc := range tests {
		p := db.Locate(netip.MustParseAddr(tc.addr))
		if p.Country != tc.country || p.CityNames["en"] != tc.city || p.CountryNames["de"] != tc.countryDE {
			t.Errorf("%s: %+v, want %s %s %s", tc.addr, p, tc.country, tc.city, tc.countryDE)
		}
		if p.Known() != (tc.country != "") {
			t.Errorf("%s: Known() = %v", tc.addr, p.Known())
		}
	}
	if p := db.Locate(netip.Addr{}); p.Known() {
		t.Errorf("invalid address: %+v", p)
	}
}

// A missing, empty, foreign, truncated or corrupt file is an error that
// names the path.
func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	good, err := os.ReadFile(testgeoip.Cities(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	corrupt := append([]byte(nil), good...)
	// Overwrite the search tree's first nodes with pointers past its end.
	for i := 0; i < 64; i++ {
		corrupt[i] = 0xff
	}
	tests := []struct {
		name string
		data []byte // nil: no file at all
		want string
	}{
		{"missing", nil, "no such file"},
		{"empty", []byte{}, "not a MaxMind DB"},
		{"text", []byte("this is not a database\n"), "not a MaxMind DB"},
		{"truncated", good[:len(good)/2], "not a MaxMind DB"},
		{"corrupt", corrupt, "corrupt"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name+".mmdb")
			if tc.data != nil {
				if err := os.WriteFile(path, tc.data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			db, err := Open(path)
			if err == nil {
				db.Close()
				t.Fatal("opened")
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %s and say %q", err, path, tc.want)
			}
		})
	}
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("a folder: %v", err)
	}
}

// A database of another layout (country as a plain string) knows no
// places, and says so by the zero Place, not by an error or a panic.
func TestOtherLayout(t *testing.T) {
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "Other", Description: map[string]string{"en": "other"}, IncludeReservedNetworks: true})
	if err != nil {
		t.Fatal(err)
	}
	_, network, _ := net.ParseCIDR("198.51.100.0/24")
	if err := tree.Insert(network, mmdbtype.Map{"country": mmdbtype.String("Germany"), "city": mmdbtype.Uint32(7)}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "other.mmdb")
	f, _ := os.Create(path)
	if _, err := tree.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if p := db.Locate(netip.MustParseAddr("198.51.100.1")); p.Known() {
		t.Errorf("another layout: %+v", p)
	}
}

// Close while lookups run (a reload's old config going away) neither
// crashes nor races; after it, nothing is known.
func TestCloseWhileLocating(t *testing.T) {
	db, err := Open(testgeoip.Cities(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 2000 {
				db.Locate(netip.MustParseAddr("198.51.100.7"))
			}
		})
	}
	db.Close()
	wg.Wait()
	if p := db.Locate(netip.MustParseAddr("198.51.100.7")); p.Known() {
		t.Errorf("after Close: %+v", p)
	}
	if err := db.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func BenchmarkLocate(b *testing.B) {
	db, err := Open(testgeoip.Cities(b, b.TempDir()))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	a := netip.MustParseAddr("198.51.100.7")
	for b.Loop() {
		db.Locate(a)
	}
}
