package flow

import (
	"fmt"
	"net/netip"
)

// Place is where an address is, as a GeoIP database says: shown on the
// confirmation page, and compared by the proximity check.
type Place struct {
	// Country is the ISO 3166-1 alpha-2 code ("DE"); "" when unknown.
	Country string
	// CountryNames and CityNames are the names by language tag ("en",
	// "de", "pt-BR"); nil when unknown. The pages pick their language's.
	CountryNames map[string]string
	CityNames    map[string]string
}

// Known reports whether the place says anything.
func (p Place) Known() bool {
	return p.Country != "" || len(p.CountryNames) > 0 || len(p.CityNames) > 0
}

// Locator finds the place of an address. It is safe for concurrent use;
// an address it does not know is the zero Place, never an error.
type Locator interface {
	Locate(netip.Addr) Place
}

// coarseNetwork is the address as shown to people: enough to recognise a
// network, not a host. IPv4 keeps /24 ("198.51.100.x"), IPv6 /48
// ("2001:db8:1234::/48"); "" for an address that does not parse.
func coarseNetwork(a netip.Addr) string {
	switch {
	case !a.IsValid():
		return ""
	case a.Is4():
		b := a.As4()
		return fmt.Sprintf("%d.%d.%d.x", b[0], b[1], b[2])
	default:
		p, _ := a.Prefix(48)
		return p.String()
	}
}

// parseAddr reads an address as Caddy gives it (perhaps with a zone, an
// IPv4-mapped IPv6 form); the zero Addr when it does not parse.
func parseAddr(s string) netip.Addr {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap().WithZone("")
}

// placeNamer names the places of addresses for the audit events
// (Config.Place): the city's English name and the country's code
// ("Berlin, DE"), as much of it as the Locator knows.
func placeNamer(loc Locator) func(ip string) string {
	return func(ip string) string {
		a := parseAddr(ip)
		if !a.IsValid() {
			return ""
		}
		p := loc.Locate(a)
		city := p.CityNames["en"]
		switch {
		case city != "" && p.Country != "":
			return city + ", " + p.Country
		case city != "":
			return city
		}
		return p.Country
	}
}
